"""What the appliance knows about the running cluster, kept beside its credentials.

Two small files under credentials/, written by the steps that talk to the API and read by `generate`
(rendering stays pure: they are inputs to it, never looked up while rendering):

- `cluster.json` — the cluster exists. `wait` writes it the first time the API answers over TLS
  signed by this CA with our client certificate accepted. From then on the first controller's config
  joins the control plane instead of running `kubeadm init` a second time (a second one-member etcd
  with the same CA and a second kube-vip announcing the VIP: split brain). It names the CA by its
  pin, so `--rotate-secrets` (a new CA, so a new cluster) makes it stale by itself.
- `join-tokens.json` — per node, the bootstrap token minted for its (re)install through the API,
  with its expiry. A node's config carries its own token; the others' configs stay byte-identical.

Why not the event log: it is a progress record that is compacted (only node states survive) and
that users may delete to clear the status page; losing it must never make `generate` render
`kubeadm init` for a cluster that runs.

Neither file is rendered by `generate`: they are carried from generation to generation as files
someone else put into the tree (see app/generations.py), so a re-render never drops them.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from app.atomic_file import atomic_write
from app.layout import CREDENTIALS

CLUSTER_RECORD = f"{CREDENTIALS}/cluster.json"
JOIN_TOKENS = f"{CREDENTIALS}/join-tokens.json"
PRIVATE = 0o600


@dataclass(frozen=True)
class JoinToken:
    token: str  # "<id>.<secret>", as kubeadm's JoinConfiguration wants it
    expires: dt.datetime  # aware, UTC
    # A controller's: the key of the kubeadm-certs upload made for its join (a fresh one per upload,
    # as kubeadm does, so a key seen once decrypts no later upload).
    certificate_key: str | None = None

    def lasts(self, now: dt.datetime, at_least: dt.timedelta) -> bool:
        return self.expires - now >= at_least

    @property
    def token_id(self) -> str:
        return self.token.split(".", 1)[0]


def _read_json(path: Path) -> dict:
    """The file's object, or {} when absent or damaged (a damaged record reads as 'nothing known')."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cluster_exists(output: Path, ca_pin: str) -> bool:
    """Has `wait` seen a cluster made with this CA?"""
    return _read_json(output / CLUSTER_RECORD).get("ca") == ca_pin


def record_cluster(output: Path, ca_pin: str, server: str, now: dt.datetime) -> bool:
    """Note that the API answered with this CA. Returns True the first time (for this CA)."""
    if cluster_exists(output, ca_pin):
        return False
    record = {"ca": ca_pin, "first_seen": now.isoformat(timespec="seconds"), "server": server}
    atomic_write(output / CLUSTER_RECORD, (json.dumps(record, indent=2) + "\n").encode(), PRIVATE)
    return True


def forget_cluster(output: Path) -> bool:
    """The explicit start-over (`generate --new-cluster`): the first controller will `kubeadm init` again."""
    path = output / CLUSTER_RECORD
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed


def load_join_tokens(output: Path, ca_pin: str) -> dict[str, JoinToken]:
    """Node name -> its newest minted token, for this CA's cluster only (tokens of a cluster made with
    a rotated-away CA mean nothing to the new one)."""
    data = _read_json(output / JOIN_TOKENS)
    if data.get("ca") != ca_pin:
        return {}
    tokens = {}
    for name, entry in (data.get("nodes") or {}).items():
        try:
            key = entry.get("certificate_key")
            tokens[name] = JoinToken(str(entry["token"]), dt.datetime.fromisoformat(entry["expires"]),
                                     str(key) if key else None)
        except (KeyError, TypeError, ValueError):
            continue  # a damaged entry: that node gets a fresh token when it next needs one
    return tokens


def _entry(token: JoinToken) -> dict:
    entry = {"token": token.token, "expires": token.expires.isoformat(timespec="seconds")}
    return entry | ({"certificate_key": token.certificate_key} if token.certificate_key else {})


def save_join_tokens(output: Path, ca_pin: str, minted: dict[str, JoinToken]) -> None:
    """Add or replace these nodes' tokens, keeping the others'."""
    tokens = {**load_join_tokens(output, ca_pin), **minted}
    data = {"ca": ca_pin, "nodes": {name: _entry(t) for name, t in sorted(tokens.items())}}
    atomic_write(output / JOIN_TOKENS, (json.dumps(data, indent=2) + "\n").encode(), PRIVATE)
