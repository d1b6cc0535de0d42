#!/bin/sh
# manifest ROOT [DIR...]: what Ignition left under ROOT (in DIRs, default all of it), one line per
# path: KIND MODE(octal) UID GID PATH [SHA256 of a file | TARGET of a link], PATH as seen from ROOT.
# tests/e2e compares it with what the config says (tests/support/ignition_fs.py).
root=${1%/}; shift
[ $# -gt 0 ] || set -- ""
for dir in "$@"; do find "$root$dir" -mindepth 1 2>/dev/null; done | sort | while read -r path; do
  rel=${path#"$root"}
  set -- $(stat -c '%a %u %g' "$path")
  if [ -L "$path" ]; then echo "link 777 $2 $3 $rel $(readlink "$path")"
  elif [ -d "$path" ]; then echo "dir $1 $2 $3 $rel"
  else echo "file $1 $2 $3 $rel $(sha256sum < "$path" | cut -d' ' -f1)"; fi
done
