"""In-memory stand-ins (Matchbox's storage/testfakes idea): the boot policy and the boot service are
tested against these. `MemoryStore` implements `app.serve.boot.store.Store`
(tests/unit/test_serve_boot_service.py checks it against the protocol)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from app.serve.boot.store import Group, known_macs


@dataclass
class MemoryStore:
    """Groups and profiles in dicts, selected with Matchbox's rule: most selector pairs first."""

    groups: list[Group] = field(default_factory=list)
    profiles: dict[str, dict] = field(default_factory=dict)
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (kind, name) -> bytes

    def select(self, labels: dict[str, str]) -> Group | None:
        ordered = sorted(self.groups, key=lambda g: g.sort_key, reverse=True)
        return next((g for g in ordered if g.matches(labels)), None)

    def profile(self, profile_id: str) -> dict | None:
        return self.profiles.get(profile_id)

    def known_nodes(self) -> dict[str, str]:
        return known_macs(self.groups)

    def text(self, kind: str, name: str) -> tuple[str, bytes] | None:
        data = self.files.get((kind, name))
        return (name, data) if data is not None else None

    def served_ignition(self, name: str, render: Callable[[bytes], bytes]) -> bytes | None:
        data = self.files.get(("ignition", name))
        try:
            return render(data) if data is not None else None
        except ValueError:
            return None


def node_store(nodes: dict[str, str]) -> MemoryStore:
    """name -> MAC: each node's install group (mac) and installed group (mac + os=installed), as
    generate writes them."""
    store = MemoryStore()
    for name, mac in nodes.items():
        store.groups += [Group(f"{name}-install", f"{name}-install", {"mac": mac}, {"name": name}),
                         Group(name, name, {"mac": mac, "os": "installed"}, {"name": name})]
        store.profiles[f"{name}-install"] = {"id": f"{name}-install", "ignition_id": f"{name}-install.ign",
                                             "boot": {"kernel": "/assets/k", "initrd": ["/assets/i"], "args": []}}
        store.profiles[name] = {"id": name, "ignition_id": f"{name}.ign"}
    return store
