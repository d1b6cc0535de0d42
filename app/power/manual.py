"""`power: manual`: a person powers the node; the appliance can only ask."""

from __future__ import annotations

from app.power.base import StatelessWay


class Manual(StatelessWay):
    name = "manual"

    def on(self) -> None:
        raise self.fail("power: manual: power it on by hand (set power: wol, redfish or ipmi to let the appliance)")

    def off(self) -> None:
        raise self.fail("power: manual: power it off by hand")
