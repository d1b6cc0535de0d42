"""What every way of powering a node offers, and the one error they raise.

A way (manual, Wake-on-LAN, Redfish, IPMI) is a small class bound to one node. Callers never see a
library's or a subprocess's exception: each way turns what went wrong into a `PowerError` naming
the node and saying which BMC answered what.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from app.cluster.model import Bmc

UNKNOWN = "unknown"


class PowerError(Exception):
    """Powering `node` failed; `message` says why, for a person."""

    def __init__(self, node: str, message: str):
        super().__init__(f"{node}: {message}")
        self.node, self.message = node, message


@dataclass(frozen=True)
class PowerStatus:
    power: str  # "on", "off", or what the BMC said ("poweringon"), or "unknown"
    boot: str  # the boot override: "pxe (once)", "hdd (continuous)", "none", or "unknown"


class Way(ABC):
    """One node's power controls. Actions return once the BMC accepted them; the state changes
    later (poll `status`)."""

    name: str  # "manual", "wol", "redfish", "ipmi"
    status_known = True  # False when the way cannot tell (manual, Wake-on-LAN): nothing to wait for

    def __init__(self, node: str):
        self.node = node

    @abstractmethod
    def on(self) -> None: ...

    @abstractmethod
    def off(self) -> None: ...

    @abstractmethod
    def status(self) -> PowerStatus: ...

    @abstractmethod
    def pxe_once(self) -> None:
        """Make the next boot a network boot."""

    @abstractmethod
    def boot_disk(self) -> None:
        """Make the following boots start from the disk (the node is installed)."""

    def location(self) -> str:
        """Where this way reaches the node (after a call: a Redfish system path is found by the first)."""
        return self.name

    def describe(self) -> str:
        """What `validate --online` reports: where the node was found and its state."""
        state = self.status()
        return f"{self.location()}: power {state.power}, boot override {state.boot}"

    def fail(self, message: str) -> PowerError:
        return PowerError(self.node, message)


class StatelessWay(Way):
    """A way that can only ask (manual) or wake (Wake-on-LAN): it cannot tell the machine's state nor
    set its boot order, so the firmware's own order must put the network first."""

    status_known = False

    def status(self) -> PowerStatus:
        return PowerStatus(UNKNOWN, UNKNOWN)

    def pxe_once(self) -> None:
        """Nothing to set: the firmware's boot order must put the network first."""

    def boot_disk(self) -> None:
        """Nothing to set: an installed node that PXE-boots again is told to boot locally."""


def read_password(node: str, bmc: Bmc) -> str:
    """The BMC password from the file or variable cluster.yaml names; never logged, never stored."""
    if bmc.password_env is not None:
        value = os.environ.get(bmc.password_env)
        if value is None:
            raise PowerError(node, f"environment variable {bmc.password_env} (bmc.password_env) is not set")
        return value
    path = Path(str(bmc.password_file))
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise PowerError(node, f"cannot read the BMC password from {path}: {getattr(exc, 'strerror', exc)}") from None
    return lines[0] if lines else ""
