"""`power: manual`: a person powers the node; the appliance can only ask."""

from __future__ import annotations

from app.power.base import UNKNOWN, PowerStatus, Way


class Manual(Way):
    status_known = False
    name = "manual"

    def on(self) -> None:
        raise self.fail("power: manual: power it on by hand (set power: wol, redfish or ipmi to let the appliance)")

    def off(self) -> None:
        raise self.fail("power: manual: power it off by hand")

    def status(self) -> PowerStatus:
        return PowerStatus(UNKNOWN, UNKNOWN)

    def pxe_once(self) -> None:
        """Nothing to set: the machine's firmware boot order is the person's (network first)."""

    def boot_disk(self) -> None:
        """Nothing to set: an installed node that PXE-boots again is told to boot locally."""
