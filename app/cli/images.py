"""`images`: the container images a cluster.yaml needs, and whether the appliance's OCI layout has
them. Also the check `validate` and `generate` run when a layout exists (one warning, before any
node boots)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import DEFAULT_IMAGES, Format, ImagesOpt, Paths, command, fail, load_or_exit
from app.cluster import Problem, render
from app.cluster.model import Cluster
from app.exitcodes import ExitCode

ADD_HINT = "add one with: skopeo copy docker://REF oci:{layout}:REF"
CILIUM_NOTE = ("cni: cilium: the cilium CLI chooses its images (quay.io/cilium/...) when it installs; they are "
               "not listed here: copy them into the layout yourself")


@dataclass
class Entry:
    ref: str
    needed_by: str
    present: bool


@dataclass
class Report:
    layout: str
    images: list[Entry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be listed, or will not be mirrored

    @property
    def missing(self) -> list[Entry]:
        return [e for e in self.images if not e.present]


def needed_manifests(cluster: Cluster, templates: Path) -> tuple[dict[str, Path | None], list[str]]:
    """The manifests `wait` applies (found exactly as it finds them), by label, and notes."""
    from app.render.templates import builtin_templates
    from app.wait.addons import make_plan

    plan = make_plan(cluster, templates, builtin_templates())
    manifests: dict[str, Path | None] = {}
    notes = []
    if cluster.cni == "flannel":
        manifests["cni/flannel.yaml"] = plan.cni_manifest
    elif cluster.cni == "cilium":
        notes.append(CILIUM_NOTE)
    if cluster.gitops:
        manifests["gitops/argo-cd.yaml"] = plan.argocd_manifest
    manifests.update({f"addons/{p.name}": p for p in plan.user})
    for label, path in manifests.items():
        if path is None:
            notes.append(f"{label} is not in the templates: its images are not known")
    return manifests, notes


def check_images(cluster: Cluster, templates: Path, layout: Path) -> Report:
    """Raises UnsupportedVersion (no kubeadm list for the version) and OSError/yaml errors from manifests."""
    from app.render.images import MIRRORED_REGISTRIES, cluster_images

    manifests, notes = needed_manifests(cluster, templates)
    needed = cluster_images(cluster, manifests)
    present = _present(layout, [i.ref for i in needed], notes)
    report = Report(str(layout), [Entry(i.ref, i.why, i.ref in present) for i in needed], notes)
    for registry in sorted({i.ref.split("/", 1)[0] for i in needed} - set(MIRRORED_REGISTRIES)):
        notes.append(f"{registry} is not mirrored: nodes pull its images from the registry itself")
    return report


def _present(layout: Path, refs: list[str], notes: list[str]) -> set[str]:
    """The refs the layout serves (by tag, or by digest when pinned), as the registry would answer."""
    from app.oci.layout import LayoutError, load_catalog
    from app.oci.reference import repository_key

    if not (layout / "index.json").is_file():
        notes.append(f"{layout} is not an OCI image layout (no index.json): nothing is served at /v2/")
        return set()
    try:
        catalog = load_catalog(layout)
    except LayoutError as exc:
        notes.append(str(exc))
        return set()
    notes.extend(catalog.problems)
    found = set()
    for ref in refs:
        name_tag, _, digest = ref.partition("@")
        name, _, tag = name_tag.rpartition(":")
        key = repository_key(name)
        if key is not None and catalog.manifest(key, digest or tag) is not None:
            found.add(ref)
    return found


def layout_warning(cluster: Cluster, templates: Path, layout: Path) -> str | None:
    """One line for validate/generate when a layout exists but lacks something; None otherwise."""
    from app.render.images import UnsupportedVersion

    if not layout.is_dir():
        return None  # no layout: a site with internet, nothing to warn about
    try:
        report = check_images(cluster, templates, layout)
    except UnsupportedVersion as exc:
        return f"image layout {layout}: {exc}"
    except (OSError, ValueError) as exc:
        return f"image layout {layout}: cannot list the images this cluster needs: {exc}"
    if not report.missing:
        return None
    names = ", ".join(e.ref for e in report.missing[:3]) + (", ..." if len(report.missing) > 3 else "")
    return (f"{len(report.missing)} of {len(report.images)} images this cluster needs are not in {layout} "
            f"({names}): nodes without internet cannot pull them (`bootstrap-node images` lists them)")


@command()
def images(
    paths: Paths,
    images: ImagesOpt = DEFAULT_IMAGES,
    fmt: Annotated[Format, typer.Option("--format", help="text, json, or github annotations.")] = Format.text,
) -> None:
    """List the container images cluster.yaml needs and whether the image layout (--images) has them.

    Exit 0 when every image is there, 1 when one is missing or the list cannot be made.
    """
    from app.render.images import UnsupportedVersion

    cluster = load_or_exit(paths.config)
    try:
        report = check_images(cluster, paths.templates, images)
    except UnsupportedVersion as exc:
        raise fail(f"images: {exc}") from None
    except (OSError, ValueError) as exc:
        raise fail(f"images: cannot read a manifest: {exc}") from None
    if fmt is Format.json:
        typer.echo(json.dumps({**asdict(report), "missing": len(report.missing)}, indent=2))
    elif fmt is Format.github:
        typer.echo(render(github_problems(report, str(paths.config)), "github"))
    else:
        _print_text(report)
    raise typer.Exit(ExitCode.INVALID if report.missing else ExitCode.OK)


def github_problems(report: Report, config: str) -> list[Problem]:
    """A missing image fails the check (an error on cluster.yaml, which asks for it); notes warn."""
    hint = ADD_HINT.format(layout=report.layout)
    missing = [Problem(config, 1, 1, "", f"image {e.ref} ({e.needed_by}) is not in {report.layout}; {hint}")
               for e in report.missing]
    return missing + [Problem(config, 1, 1, "", note, "warning") for note in report.notes]


def _print_text(report: Report) -> None:
    width = max((len(e.ref) for e in report.images), default=0)
    for e in report.images:
        typer.echo(f"{'present' if e.present else 'MISSING':8} {e.ref:{width}}  ({e.needed_by})")
    for note in report.notes:
        typer.echo(f"note: {note}")
    missing = len(report.missing)
    summary = f"{len(report.images)} images needed, {missing} missing from {report.layout}"
    typer.echo(summary + (f"; {ADD_HINT.format(layout=report.layout)}" if missing else ""))
