"""`pivot` and `unpivot`: provisioning moves into the cluster it built, and back (docs/pivot.md).

Exit codes: 0 done; 1 an option or cluster.yaml is wrong (also: a kubeconfig whose server is plain
http, or a --namespace that exists and is not pivot's); 2 the output directory or kubeconfig
cannot be read (or unpivot's target is not empty); 3 the API server did not answer; 5 the API server
refused an object (RBAC, validation: its own message is printed); 6 the admission policies were not
enforced within --timeout (the Deployment was not applied).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from app import __version__
from app.cli.common import Paths, command, fail, load_or_exit
from app.exitcodes import ExitCode

Namespace = Annotated[str, typer.Option(help="Namespace for the appliance and its objects.")]
Timeout = Annotated[float, typer.Option(help="Seconds to keep retrying a call while the API server does not "
                                              "answer (or a new CRD is not served yet, or pivot's admission "
                                              "policies are not enforced yet).")]
ServerOpt = Annotated[str, typer.Option(help="https://host:port of the API server, instead of the kubeconfig's own "
                                             "(when its name does not resolve here).")]
UnpivotTimeout = Annotated[float, typer.Option(help="Seconds to keep retrying a call while the API server does not "
                                                    "answer.")]
Image = Annotated[str, typer.Option(help="The appliance image the nodes can pull.")]
NodeSelector = Annotated[str, typer.Option(help="key=value: the nodes on the provisioning network.")]
DEFAULT_IMAGE = f"bootstrap-node:{__version__}"
DEFAULT_SELECTOR = "bootstrap-node.io/provisioning=true"
DEFAULT_NAMESPACE = "bootstrap-node"


def _api(kubeconfig: Path, timeout: float, server: str = ""):
    from app.pivot.apply import InsecureServer, KubeconfigError, Sender, Unreachable, connect
    from app.wait import kube
    try:
        sender = Sender(connect(kubeconfig, server), timeout)
        sender.ready()
    except KubeconfigError as exc:
        raise fail(str(exc), ExitCode.UNREADABLE) from None
    except InsecureServer as exc:  # as --server http://: refused before anything is sent
        raise fail(str(exc)) from None
    except Unreachable as exc:
        raise fail(f"the API server did not answer within {timeout:.0f} s: {exc}", ExitCode.API) from None
    except kube.Fatal as exc:  # it answered, but not as a Kubernetes API server that takes these credentials
        raise _refused(exc) from None
    return sender


def _refused(exc: Exception) -> typer.Exit:
    from app.wait import kube
    hint = (" (RBAC: this kubeconfig's user may not do this; pivot and unpivot need a cluster admin's)"
            if isinstance(exc, kube.Forbidden) and "being terminated" not in str(exc) else "")
    return fail(f"the API server refused: {exc}{hint}", ExitCode.ADDONS)


def _check_server(server: str) -> None:
    from app.pivot.apply import plain_http
    if server and (problem := plain_http("--server", server)):
        raise fail(problem)


def _check_timeout(timeout: float) -> None:
    if not timeout > 0:
        raise fail(f"--timeout {timeout}: must be a number of seconds above 0")


@dataclass(frozen=True)
class PivotOptions:
    """What `pivot` and `init --pivot` share."""

    image: str = DEFAULT_IMAGE
    namespace: str = DEFAULT_NAMESPACE
    node_selector: str = DEFAULT_SELECTOR
    timeout: float = 60.0

    def check(self, cluster) -> None:
        """Refuse a bad option (exit 1) before anything is read or sent."""
        from app.pivot.manifests import PivotInput, PivotInputError, parse_selector
        from app.pivot.state import State
        _check_timeout(self.timeout)
        try:
            PivotInput(cluster, State({}), self.image, self.namespace, parse_selector(self.node_selector))
        except PivotInputError as exc:
            raise fail(str(exc), ExitCode.INVALID) from None


def rendered(cluster, paths, options: PivotOptions) -> list[dict]:
    from app.pivot.manifests import PivotInput, parse_selector, render
    from app.pivot.state import StateError, read_state
    options.check(cluster)
    try:
        state = read_state(paths.output, paths.templates)
        return render(PivotInput(cluster, state, options.image, options.namespace,
                                 parse_selector(options.node_selector)))
    except StateError as exc:
        raise fail(str(exc), ExitCode.UNREADABLE) from None


def statuses(cluster, paths, objects: list[dict]) -> dict[str, dict]:
    """The status each new Machine starts with: its node's phase from the output's event log, so that
    the cluster knows which machines are installed (app/pivot/history.py)."""
    from app.pivot import history
    return history.statuses(objects, history.node_states(paths.output, {n.mac: n.name for n in cluster.nodes}))


def send(objects: list[dict], kubeconfig: Path, options: PivotOptions, *, server_dry_run: bool = False,
         server: str = "", started: dict[str, dict] | None = None) -> int:
    """Apply (or dry-run) the objects, saying what happened; raises pivot's exits. The number of
    Machines. `server`: an endpoint to use instead of the kubeconfig's. `started`: Machine name -> the
    status it starts with (statuses())."""
    from app.pivot.apply import NotInForce, Unreachable
    from app.pivot.ownership import ForeignNamespace
    from app.wait import kube

    sender = _api(kubeconfig, options.timeout, server)
    try:
        outcome = sender.apply(objects, dry_run=server_dry_run, statuses=started)
    except ForeignNamespace as exc:  # a wrong --namespace, found out only by asking
        raise fail(str(exc)) from None
    except Unreachable as exc:
        raise fail(f"the API server stopped answering: {exc}", ExitCode.API) from None
    except NotInForce as exc:
        raise fail(f"the admission policies that confine the ServiceAccount were not enforced within "
                   f"{options.timeout:.0f} s ({exc}). Its RBAC is applied, but its Deployment is not, so nothing "
                   "holds its token. Run pivot again; if this repeats, check that the API server enforces "
                   "ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1).", ExitCode.UNCONFINED) from None
    except kube.Fatal as exc:
        raise _refused(exc) from None
    if not server_dry_run:
        _retire_legacy(sender.api, options.namespace)
    _say(outcome, server_dry_run)
    return sum(o["kind"] == "Machine" for o in objects)


def _say(outcome, server_dry_run: bool) -> None:
    verb = "accepted (dry run, nothing stored)" if server_dry_run else "applied"
    for index, name in enumerate(outcome.applied):
        if outcome.in_force and index == outcome.in_force_after:
            for policy in outcome.in_force:
                typer.echo(f"in force before the Deployment: {policy}")
        typer.echo(f"{verb}: {name}")
    for reason in outcome.skipped:
        typer.echo(f"not checked: {reason}")
    for machine in outcome.statuses:
        typer.echo(f"status from the event log: {machine}")


def _retire_legacy(api, namespace: str) -> None:
    """The RBAC names of a pivot before they were per namespace, deleted when they are this
    namespace's (app/pivot/legacy.py). Everything is applied already, so a failure here is said, not fatal."""
    from app.pivot.legacy import retire
    from app.wait import kube
    try:
        for what in retire(api, namespace):
            typer.echo(f"deleted (its old, per-cluster name): {what}")
    except (kube.Transient, kube.Fatal) as exc:
        typer.echo(f"the old per-cluster RBAC names were not checked ({exc}); see docs/pivot.md, "
                   "\"After an upgrade\"", err=True)


@command("pivot")
def pivot_command(
    paths: Paths,
    kubeconfig: Annotated[Path | None, typer.Option(help="kubeconfig of the new cluster (its current context), a "
                                                         "cluster admin's; not needed with --dry-run.")] = None,
    image: Image = DEFAULT_IMAGE,
    namespace: Namespace = DEFAULT_NAMESPACE,
    node_selector: NodeSelector = DEFAULT_SELECTOR,
    dry_run: Annotated[bool, typer.Option(help="Print the manifests as YAML (Secrets redacted); send nothing.")]
    = False,
    server_dry_run: Annotated[bool, typer.Option(help="Send everything with dryRun=All: the API server checks "
                                                      "each object (admission too) and stores none.")] = False,
    timeout: Timeout = 60.0,
    server: ServerOpt = "",
) -> None:
    """Move provisioning into the cluster: CRDs, RBAC, the appliance as a Deployment, and the state
    (PKI, cluster record, templates, nodes as Machines). Idempotent: server-side apply."""
    from app.pivot.bmc import secret_hints
    from app.pivot.manifests import to_yaml

    cluster = load_or_exit(paths.config)
    _check_server(server)
    options = PivotOptions(image, namespace, node_selector, timeout)
    objects = rendered(cluster, paths, options)
    if dry_run:
        typer.echo(to_yaml(objects), nl=False)
        return
    if kubeconfig is None:
        raise fail("pass --kubeconfig (the new cluster's, a cluster admin's), or --dry-run to print the manifests")
    machines = send(objects, kubeconfig, options, server_dry_run=server_dry_run, server=server,
                    started=statuses(cluster, paths, objects))
    if not server_dry_run:
        typer.echo(f"pivoted: {machines} machines in namespace {namespace}; "
                   "`kubectl get machines -n " + namespace + "` lists them")
        for hint in secret_hints([o for o in objects if o["kind"] == "Machine"]):
            typer.echo(hint)


@command("unpivot")
def unpivot_command(paths: Paths,
                    kubeconfig: Annotated[Path, typer.Option(help="kubeconfig of the cluster (its current context), "
                                                                  "a cluster admin's: it reads the CA keys.")],
                    namespace: Annotated[str, typer.Option(help="The namespace pivot used.")] = DEFAULT_NAMESPACE,
                    timeout: UnpivotTimeout = 60.0, server: ServerOpt = "") -> None:
    """Export the cluster's provisioning state into a new output directory (--output), with its
    cluster.yaml and templates, for `generate` and `serve` on an appliance. Reads only."""
    from app.cluster.machines import MachineError, namespace_problem
    from app.pivot import history
    from app.pivot.state import StateError
    from app.pivot.unpivot import CLUSTER_YAML, TEMPLATES, export, read_cluster, unusable_target
    from app.wait import kube

    # Everything that needs no API first: a wrong option waits for no timeout.
    if problem := namespace_problem("--namespace", namespace):
        raise fail(problem)
    _check_timeout(timeout)
    _check_server(server)
    if problem := unusable_target(paths.output):
        raise fail(problem, ExitCode.UNREADABLE)
    sender = _api(kubeconfig, timeout, server)
    try:
        machines: list[dict] = []
        cluster, state = read_cluster(sender.api, namespace, seen=machines)
        export(cluster, state, paths.output, dt.datetime.now(dt.UTC), history.event_log(machines))
    except (StateError, MachineError) as exc:
        raise fail(str(exc), ExitCode.UNREADABLE) from None
    except kube.Transient as exc:
        raise fail(f"the API server stopped answering: {exc}", ExitCode.API) from None
    except kube.Fatal as exc:
        raise _refused(exc) from None
    out = paths.output
    typer.echo(f"exported {len(cluster.nodes)} nodes to {out}; next: bootstrap-node --config {out / CLUSTER_YAML} "
               f"--output {out} --templates {out / TEMPLATES} generate")
