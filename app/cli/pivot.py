"""`pivot` and `unpivot`: provisioning moves into the cluster it built, and back (docs/pivot.md).

Exit codes: 0 done; 1 an option or cluster.yaml is wrong; 2 the output directory or kubeconfig
cannot be read (or unpivot's target is not empty); 3 the API server did not answer; 5 the API server
refused an object (RBAC, validation: its own message is printed).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from app import __version__
from app.cli.common import Paths, command, fail, load_or_exit
from app.exitcodes import ExitCode

Kubeconfig = Annotated[Path, typer.Option(help="kubeconfig of the new cluster (its current context), with rights to "
                                               "create CRDs and RBAC: a cluster admin's.")]
Namespace = Annotated[str, typer.Option(help="Namespace for the appliance and its objects.")]
Timeout = Annotated[float, typer.Option(help="Seconds to keep retrying a call while the API server does not "
                                              "answer (or a new CRD is not served yet).")]
DEFAULT_IMAGE = f"bootstrap-node:{__version__}"


def _api(kubeconfig: Path, timeout: float):
    from app.pivot.apply import KubeconfigError, Sender, Unreachable, connect
    try:
        sender = Sender(connect(kubeconfig), timeout)
        sender.ready()
    except KubeconfigError as exc:
        raise fail(str(exc), ExitCode.UNREADABLE) from None
    except Unreachable as exc:
        raise fail(f"the API server did not answer within {timeout:.0f} s: {exc}", ExitCode.API) from None
    return sender


def _refused(exc: Exception) -> typer.Exit:
    from app.wait import kube
    hint = (" (RBAC: this kubeconfig's user may not do this; pivot needs a cluster admin's rights to create CRDs "
            "and RBAC)") if isinstance(exc, kube.Forbidden) else ""
    return fail(f"the API server refused: {exc}{hint}", ExitCode.ADDONS)


@command("pivot")
def pivot_command(
    paths: Paths,
    kubeconfig: Annotated[Path | None, typer.Option(help="kubeconfig of the new cluster (its current context), a "
                                                         "cluster admin's; not needed with --dry-run.")] = None,
    image: Annotated[str, typer.Option(help="The appliance image the nodes can pull.")] = DEFAULT_IMAGE,
    namespace: Namespace = "bootstrap-node",
    node_selector: Annotated[str, typer.Option(help="key=value: the nodes on the provisioning network.")]
    = "bootstrap-node.io/provisioning=true",
    dry_run: Annotated[bool, typer.Option(help="Print the manifests as YAML (Secrets redacted); send nothing.")]
    = False,
    server_dry_run: Annotated[bool, typer.Option(help="Send everything with dryRun=All: the API server checks "
                                                      "each object (admission too) and stores none.")] = False,
    timeout: Timeout = 60.0,
) -> None:
    """Move provisioning into the cluster: CRDs, RBAC, the appliance as a Deployment, and the state
    (PKI, cluster record, templates, nodes as Machines). Idempotent: server-side apply."""
    from app.pivot.apply import Unreachable
    from app.pivot.manifests import PivotInput, PivotInputError, parse_selector, render, to_yaml
    from app.pivot.state import StateError, read_state
    from app.wait import kube

    cluster = load_or_exit(paths.config)
    try:
        state = read_state(paths.output, paths.templates)
        objects = render(PivotInput(cluster, state, image, namespace, parse_selector(node_selector)))
    except StateError as exc:
        raise fail(str(exc), ExitCode.UNREADABLE) from None
    except PivotInputError as exc:
        raise fail(str(exc), ExitCode.INVALID) from None
    if dry_run:
        typer.echo(to_yaml(objects), nl=False)
        return
    if kubeconfig is None:
        raise fail("pass --kubeconfig (the new cluster's, a cluster admin's), or --dry-run to print the manifests")
    sender = _api(kubeconfig, timeout)
    try:
        outcome = sender.apply(objects, dry_run=server_dry_run)
    except Unreachable as exc:
        raise fail(f"the API server stopped answering: {exc}", ExitCode.API) from None
    except kube.Fatal as exc:
        raise _refused(exc) from None
    verb = "accepted (dry run, nothing stored)" if server_dry_run else "applied"
    for name in outcome.applied:
        typer.echo(f"{verb}: {name}")
    for reason in outcome.skipped:
        typer.echo(f"not checked: {reason}")
    if not server_dry_run:
        typer.echo(f"pivoted: {len(cluster.nodes)} machines in namespace {namespace}; "
                   "`kubectl get machines -n " + namespace + "` lists them")


@command("unpivot")
def unpivot_command(paths: Paths, kubeconfig: Kubeconfig, namespace: Namespace = "bootstrap-node",
                    timeout: Timeout = 60.0) -> None:
    """Export the cluster's provisioning state into a new output directory (--output), with its
    cluster.yaml and templates, for `generate` and `serve` on an appliance."""
    from app.cluster.machines import MachineError
    from app.pivot.state import StateError
    from app.pivot.unpivot import CLUSTER_YAML, TEMPLATES, export, read_cluster
    from app.wait import kube

    sender = _api(kubeconfig, timeout)
    try:
        cluster, state = read_cluster(sender.api, namespace)
        export(cluster, state, paths.output, dt.datetime.now(dt.UTC))
    except (StateError, MachineError) as exc:
        raise fail(str(exc), ExitCode.UNREADABLE) from None
    except kube.Transient as exc:
        raise fail(f"the API server stopped answering: {exc}", ExitCode.API) from None
    except kube.Fatal as exc:
        raise _refused(exc) from None
    out = paths.output
    typer.echo(f"exported {len(cluster.nodes)} nodes to {out}; next: bootstrap-node --config {out / CLUSTER_YAML} "
               f"--output {out} --templates {out / TEMPLATES} generate")
