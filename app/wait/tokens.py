"""Which nodes need a fresh join token once the cluster exists, and minting them (before `generate`
renders, so each (re)installed node's config carries a token that is valid when it joins).

A node needs one when it is about to install — new to the cluster, or let in again by `reinstall` —
and its last token is missing or past half its life. Installed nodes keep the token their config
already has (expired or not: that config is never served again without a `reinstall`), so their
files stay byte-identical when the cluster grows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from pathlib import Path

from app import pki
from app.cluster import Cluster, Node
from app.cluster_record import JoinToken, load_join_tokens, save_join_tokens
from app.events import EventLog, NodeState
from app.layout import ADMIN_KUBECONFIG
from app.wait import kube, kubeadm_secrets

# Workers: kubeadm's default token lifetime. Controllers: kubeadm's lifetime for kubeadm-certs (the
# CA keys, encrypted), which their join needs as much as the token.
WORKER_TTL = dt.timedelta(hours=24)
CONTROLLER_TTL = dt.timedelta(hours=2)
TOKEN_TTL_AT_INIT = "2 h after kubeadm init"


@dataclass
class JoinPlan:
    tokens: dict[str, str] = field(default_factory=dict)  # node name -> token its config carries
    certificate_keys: dict[str, str] = field(default_factory=dict)  # controller -> key of its upload
    minted: list[str] = field(default_factory=list)  # nodes that got a new token just now
    certs_uploaded: bool = False
    warnings: list[str] = field(default_factory=list)


def ttl(node: Node) -> dt.timedelta:
    return CONTROLLER_TTL if node.role == "controller" else WORKER_TTL


def about_to_install(state: NodeState | None) -> bool:
    """Not installed as far as the event log knows (new, installing, or let in by `reinstall`)."""
    return state is None or not state.installed


def needs_token(node: Node, state: NodeState | None, stored: JoinToken | None, now: dt.datetime) -> bool:
    """A controller also needs one when no kubeadm-certs upload was recorded for it (an upload that
    failed after its token was made)."""
    if not about_to_install(state):
        return False
    return (stored is None or not stored.lasts(now, ttl(node) / 2)
            or (node.role == "controller" and stored.certificate_key is None))


def prepare_joins(cluster: Cluster, output: Path, secrets: pki.Secrets, servers: list[str], now: dt.datetime,
                  api=None) -> JoinPlan:
    """For a cluster that exists: the token each node's config carries, minting where needed. `api`: the
    client to mint with (cluster mode's ServiceAccount); without it, credentials/admin.kubeconfig on `servers`."""
    pin = pki.ca_pin(secrets.ca_crt)
    stored = load_join_tokens(output, pin)
    plan = JoinPlan(tokens={name: t.token for name, t in stored.items()},
                    certificate_keys={name: t.certificate_key for name, t in stored.items() if t.certificate_key})
    log = EventLog(output, {n.mac: n.name for n in cluster.nodes})
    states = {n.name: log.state(n.mac) for n in cluster.nodes}
    wanted = [n for n in cluster.nodes if needs_token(n, states[n.name], stored.get(n.name), now)]
    if not wanted:
        return plan
    if api is None:
        api, why = kubeadm_secrets.connect(output / ADMIN_KUBECONFIG, servers)
        if api is None:
            plan.warnings.append(_no_api_warning(wanted, stored, why))
            return plan
    try:
        _mint(api, plan, _new_to_the_cluster(api, wanted, states), secrets, output, pin, now)
    except (kube.Transient, kube.Fatal) as exc:
        plan.warnings.append(f"minting join tokens failed ({exc}): "
                             f"{', '.join(n.name for n in wanted if n.name not in plan.minted)} may not join; "
                             "run generate again")
    return plan


def _new_to_the_cluster(api, wanted: list[Node], states: dict[str, NodeState | None]) -> list[Node]:
    """Leave alone a node the event log never saw that the API knows: it was installed before this
    log began (a fresh log must not mint a token for every node)."""
    registered = kubeadm_secrets.registered_nodes(api)
    return [n for n in wanted if states[n.name] is not None or n.name not in registered]


def _mint(api, plan: JoinPlan, nodes: list[Node], secrets: pki.Secrets, output: Path, pin: str,
          now: dt.datetime) -> None:
    minted: dict[str, JoinToken] = {}
    try:
        for node in nodes:
            token, _ = kubeadm_secrets.mint_token(api, now, ttl(node), f"bootstrap-node: join of {node.name}")
            minted[node.name] = token
            plan.minted.append(node.name)
            plan.tokens[node.name] = token.token
        controllers = [n.name for n in nodes if n.role == "controller"]
        if controllers:
            _, key = kubeadm_secrets.upload_certs(api, secrets, now, CONTROLLER_TTL)
            plan.certs_uploaded = True
            for name in controllers:
                minted[name] = replace(minted[name], certificate_key=key)
                plan.certificate_keys[name] = key
    finally:
        if minted:  # what exists in the cluster is recorded, even when a later call failed
            save_join_tokens(output, pin, minted)


def _no_api_warning(wanted: list[Node], stored: dict[str, JoinToken], why: str) -> str:
    carried = []
    for node in wanted:
        token = stored.get(node.name)
        carried.append(f"{node.name} (token expires {token.expires.isoformat(timespec='minutes')})" if token
                       else f"{node.name} (the first install's token, which lived {TOKEN_TTL_AT_INIT})")
    return ("the cluster exists but its API did not answer, so no fresh join token was made for "
            f"{', '.join(carried)}: their joins will fail until you run generate again with the API up "
            f"({why})")
