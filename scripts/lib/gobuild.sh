# shellcheck shell=bash
# Shared by the scripts that build real Go programs from the Go module proxy (scripts/*-binaries):
# one cache layout, one lock, one way to publish a finished build. Source it; it defines functions only.
#
# Layout: $CACHE/<tool>/<version>/ holds the binaries and BUILD-INFO; $CACHE/go/{mod,build} are the
# module and build caches, so a second build (or a second CI run on the same machine) is warm.
# $CACHE is $BOOTSTRAP_NODE_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/bootstrap-node. Nothing lands in
# the repository. A build is published by renaming a finished staging directory into place, so a
# directory that exists is whole: an interrupted build leaves only a staging directory behind.

set -euo pipefail

GB_CACHE="${BOOTSTRAP_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bootstrap-node}"
# The modules built here need a newer Go than some machines ship; the go command fetches this
# toolchain through the module proxy once per machine.
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
export GOMODCACHE="$GB_CACHE/go/mod" GOCACHE="$GB_CACHE/go/build"
export GOFLAGS="-mod=mod" CGO_ENABLED="${CGO_ENABLED:-0}"

gb_say() { printf '%s\n' "$*" >&2; }
gb_die() { gb_say "error: $*"; exit 1; }

# gb_begin TOOL VERSION: sets GB_OUT (the final directory) and GB_STAGE (where to put binaries),
# takes the per-version lock, and, when GB_OUT is already complete, prints it and exits 0.
gb_begin() {
  local tool=$1 version=$2
  [[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] \
    || gb_die "version must look like v1.2.3, got '$version'"
  command -v go >/dev/null || gb_die "needs the go command (Debian: golang-go, or a Go toolchain on PATH)"
  GB_TOOL=$tool GB_VERSION=$version
  GB_OUT="$GB_CACHE/$tool/$version"
  mkdir -p "$GB_CACHE/$tool"
  exec {GB_LOCK_FD}>"$GB_CACHE/$tool/.$version.lock"
  if ! flock -n "$GB_LOCK_FD"; then
    gb_say "another build of $tool $version is running; waiting for it"
    flock "$GB_LOCK_FD"
  fi
  if [[ -f $GB_OUT/BUILD-INFO ]]; then
    gb_say "$tool $version: cached"
    printf '%s\n' "$GB_OUT"
    exit 0
  fi
  GB_STAGE=$(mktemp -d "$GB_CACHE/$tool/.$version.staging.XXXXXX")
  GB_WORK=$(mktemp -d "${TMPDIR:-/tmp}/gobuild-$tool.XXXXXX")
  GB_STARTED=$(date +%s)
  trap 'rm -rf "$GB_STAGE" "$GB_WORK"' EXIT
}

# gb_module REQUIRE...: a scratch module in GB_WORK requiring MODULE@VERSION each; extra go.mod
# lines (replace directives) come on standard input.
gb_module() {
  (cd "$GB_WORK" && go mod init bootstrap-node.invalid/build >/dev/null 2>&1)
  cat >>"$GB_WORK/go.mod"
  local req
  for req in "$@"; do
    gb_say "fetching $req"
    (cd "$GB_WORK" && go get "$req" >&2) || gb_die "go get $req failed (is the Go module proxy reachable?)"
  done
}

# gb_build PACKAGE [NAME]: go build one main package of the scratch module into the staging dir.
gb_build() {
  local pkg=$1 name=${2:-$(basename "$1")} t0
  t0=$(date +%s)
  gb_say "building $name ($pkg)"
  (cd "$GB_WORK" && go build -trimpath -o "$GB_STAGE/$name" "${@:3}" "$pkg" >&2) \
    || gb_die "go build $pkg failed"
  gb_say "  $name: $(( $(date +%s) - t0 )) s, $(du -k "$GB_STAGE/$name" | cut -f1) KiB"
}

# gb_finish: record how it was built and publish the staging dir as GB_OUT; prints GB_OUT last.
gb_finish() {
  {
    printf 'tool=%s\nversion=%s\n' "$GB_TOOL" "$GB_VERSION"
    printf 'go=%s\n' "$(cd "$GB_WORK" && go env GOVERSION)"
    printf 'built_seconds=%s\n' "$(( $(date +%s) - GB_STARTED ))"
    printf 'built_at=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    if ! (cd "$GB_WORK" && go list -m all 2>/dev/null) >"$GB_WORK/.modules"; then
      # The whole graph can hold a module the proxy refuses that no built package needs (cilium's
      # test-only sigs.k8s.io/mcs-api/conformance): then record the modules the binaries link.
      { go version -m "$GB_STAGE"/* 2>/dev/null || true; } \
        | awk '$1 == "mod" || $1 == "dep" { print $2 " " $3 }' | sort -u >"$GB_WORK/.modules"
    fi
    sed 's/^/module=/' "$GB_WORK/.modules"
  } >"$GB_STAGE/BUILD-INFO"
  chmod 755 "$GB_STAGE"
  rm -rf "$GB_OUT"
  mv "$GB_STAGE" "$GB_OUT"
  gb_say "$GB_TOOL $GB_VERSION built in $(( $(date +%s) - GB_STARTED )) s: $(du -sh "$GB_OUT" | cut -f1)"
  printf '%s\n' "$GB_OUT"
}
