"""`wait`: the health gate. API answers → add-ons applied → exactly cluster.yaml's nodes Ready →
`<output>/kubeconfig`. Progress merges the event log (PXE, install, kubeadm) with the API's view.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from app import pki
from app.atomic_file import atomic_write
from app.cluster import Cluster
from app.cluster_record import record_cluster
from app.events import Event, EventKind, EventLog, Phase, append_event
from app.exitcodes import ExitCode
from app.layout import ADMIN_KUBECONFIG, CREDENTIALS, KUBECONFIG, api_url
from app.wait import API_TIMEOUT, NODES_TIMEOUT, POLL, kube
from app.wait.addons import Installer, Plan

EXIT_OK, EXIT_API, EXIT_NODES, EXIT_ADDONS, EXIT_INTERRUPTED = (ExitCode.OK, ExitCode.API, ExitCode.NODES,
                                                                ExitCode.ADDONS, ExitCode.INTERRUPTED)
# The kubelet's NotReady message when no CNI is installed yet.
NO_NETWORK = re.compile(r"network (plugin )?(is )?not ready|NetworkReady=false|cni", re.I)


@dataclass
class WaitOptions:
    api_timeout: float = API_TIMEOUT
    nodes_timeout: float = NODES_TIMEOUT
    poll: float = POLL
    servers: list[str] = field(default_factory=list)  # override the endpoints to try
    plan: Plan | None = None  # CNI, add-ons, GitOps


@dataclass
class Outcome:
    code: int
    message: str
    cluster_recorded: bool = False  # this run was the first to see the cluster (see app/cluster_record.py)
    server: str = ""  # the API endpoint that answered (init --pivot goes on through it)


class Interrupted(Exception):
    pass


def api_endpoints(cluster: Cluster, servers: list[str] | None = None) -> list[str]:
    """Where to reach the API: `servers` when given; else the name, the VIP, then each controller."""
    if servers:
        return list(servers)
    hosts = [cluster.api_host, cluster.control_plane_address] + [str(n.ip) for n in cluster.controllers]
    return list(dict.fromkeys(api_url(h) for h in hosts))


class Gate:
    def __init__(self, cluster: Cluster, output: Path, opts: WaitOptions, stop: threading.Event, report):
        self.cluster, self.output, self.opts, self.stop, self.report = cluster, output, opts, stop, report
        self.kubeconfig = output / ADMIN_KUBECONFIG
        self.api_view: dict[str, dict] = {}
        self.last_error = ""
        self._log: EventLog | None = None
        self.cluster_recorded = False

    # -- the three steps ---------------------------------------------------------------------------
    def run(self) -> Outcome:
        outcome = self._steps()
        outcome.cluster_recorded = self.cluster_recorded  # failed or not, the API was seen
        return outcome

    def _steps(self) -> Outcome:
        if not self.kubeconfig.exists():
            return Outcome(EXIT_API, f"{self.kubeconfig} not found: run `bootstrap-node generate` first")
        try:
            api = self._api()
            if api is None:
                return Outcome(EXIT_API, f"the API server did not answer within {self.opts.api_timeout:.0f}s "
                                         f"on {', '.join(self.endpoints())}: {self.last_error}")
            self._record(Event(EventKind.API_READY, source="wait", message=api.configuration.host))
            self.cluster_recorded = self._record_cluster(api.configuration.host)
            failure = self._addons(api)
            if failure:
                return Outcome(EXIT_ADDONS, failure)
            missing = self._nodes(api)
            if missing:
                return Outcome(EXIT_NODES, "nodes not Ready within "
                               f"{self.opts.nodes_timeout:.0f}s:\n" + "\n".join(missing))
        except Interrupted:
            return Outcome(EXIT_INTERRUPTED, "interrupted")
        server = api_url(self.cluster.api_host)
        atomic_write(self.output / KUBECONFIG, self._user_kubeconfig(server), 0o600)
        waiting_for_cni = [n.name for n in self.cluster.nodes if not self.api_view.get(n.name, {}).get("ready")]
        ready = (f"all {len(self.cluster.nodes)} nodes Ready" if not waiting_for_cni else
                 f"all {len(self.cluster.nodes)} nodes registered ({', '.join(waiting_for_cni)} NotReady until "
                 "a pod network is installed: cni is none)")
        return Outcome(EXIT_OK, f"{ready}; wrote {self.output / 'kubeconfig'} "
                                f"(server {server})", server=api.configuration.host)

    def _record_cluster(self, server: str) -> bool:
        """The API answered over TLS signed by our CA, with our client certificate: the cluster exists,
        and from now on the first controller's config must join it, never `kubeadm init` again."""
        ca_pin = pki.ca_pin((self.output / CREDENTIALS / "ca.crt").read_bytes())
        return record_cluster(self.output, ca_pin, server, dt.datetime.now(dt.UTC))

    def _user_kubeconfig(self, server: str) -> bytes:
        """The user's own credential (kubeadm:cluster-admins), not the appliance's system:masters one."""
        secrets = pki.from_files(lambda name: (self.output / CREDENTIALS / name).read_bytes())
        return pki.user_kubeconfig(secrets, server, self.cluster.cluster.name, dt.datetime.now(dt.UTC))

    def endpoints(self) -> list[str]:
        return api_endpoints(self.cluster, self.opts.servers)

    def _api(self):
        deadline = time.monotonic() + self.opts.api_timeout
        clients = {url: kube.api_client(self.kubeconfig, url) for url in self.endpoints()}
        while time.monotonic() < deadline:
            fatal = []
            for url, api in clients.items():
                try:
                    if kube.readyz(api) == "ok":
                        return api
                    self.last_error = f"{url}/readyz is not ok yet"
                except kube.Transient as exc:
                    self.last_error = f"{url}: {exc}"
                except kube.Fatal as exc:
                    self.last_error = f"{url}: {exc}"
                    fatal.append(url)
            if len(fatal) == len(clients):
                return None  # every endpoint refused us outright: waiting will not change that
            self._show()
            self._sleep(self.opts.poll)
        return None

    def _addons(self, api) -> str | None:
        if self.opts.plan is None:
            return None
        say = lambda message: self._record(Event(EventKind.ADDONS, source="wait", message=message))  # noqa: E731
        installer = Installer(api, self.opts.plan, self.output, time.monotonic() + self.opts.nodes_timeout,
                              self._sleep, say, self.opts.poll)
        try:
            installer.run()
        except kube.Fatal as exc:
            return f"add-on failed: {exc}"
        return None

    def _nodes(self, api) -> list[str]:
        deadline = time.monotonic() + self.opts.nodes_timeout
        recorded: set[str] = set()
        while True:
            try:
                self.api_view = kube.nodes(api)
            except kube.Transient as exc:
                self.last_error = str(exc)
            for node in self.cluster.nodes:
                if self.api_view.get(node.name, {}).get("ready") and node.name not in recorded:
                    recorded.add(node.name)
                    self._record(Event(Phase.READY, mac=node.mac, node=node.name, source="wait"))
            self._show()
            pending = [n for n in self.cluster.nodes if not self._done(n)]
            if not pending:
                return []
            if time.monotonic() > deadline:
                return [self._why(n) for n in pending]
            self._sleep(self.opts.poll)

    def _done(self, node) -> bool:
        """Ready; or, with `cni: none`, registered and NotReady only for want of a pod network
        (bootstrap-node installs none; the user's add-ons may bring one later)."""
        view = self.api_view.get(node.name)
        if view is None:
            return False
        if view["ready"]:
            return True
        return self.cluster.cni == "none" and bool(NO_NETWORK.search(view["reason"]))

    # -- helpers -----------------------------------------------------------------------------------
    def _why(self, node) -> str:
        state = self.states().get(node.mac)
        phase = state.phase if state and state.phase else "never seen"
        api = self.api_view.get(node.name)
        seen = f"NotReady: {api['reason']}" if api else "not registered with the API server"
        error = f"; last error: {state.error}" if state and state.error else ""
        return f"  {node.name} ({node.mac}): last phase {phase}; {seen}{error}"

    def states(self):
        """Node states from the event log, reading only what was appended since the last look."""
        if self._log is None:
            self._log = EventLog(self.output, {n.mac: n.name for n in self.cluster.nodes})
        else:
            self._log.follow(external_only=False)
        return {s.mac: s for s in self._log.snapshot()}

    def rows(self) -> list[list[str]]:
        states = self.states()
        out = []
        for node in self.cluster.nodes:
            state = states.get(node.mac)
            api = self.api_view.get(node.name)
            view = "Ready" if api and api["ready"] else ("NotReady" if api else "-")
            out.append([node.name, node.role, (state.phase if state and state.phase else "pending"), view,
                        (state.error if state else "") or ""])
        alerts = self._log.alerts if self._log is not None else {}
        if alerts:  # refused config requests and callbacks: someone else asked for a node's secrets
            out.append(["(alerts)", "-", f"{sum(alerts.values())} refused", "-",
                        "; ".join(f"{count}x {reason}" for reason, count in sorted(alerts.items()))])
        return out

    def _show(self) -> None:
        self.report(self.rows())

    def _record(self, event: Event) -> None:
        append_event(self.output, event)

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Interrupted()


def wait_for_cluster(cluster: Cluster, output: Path, opts: WaitOptions, stop: threading.Event,
                     report=lambda rows: None) -> Outcome:
    return Gate(cluster, output, opts, stop, report).run()
