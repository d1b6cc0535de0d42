"""An IPMI-over-LAN server for tests: pyghmi's BMC server (the one virtualbmc runs on), with an
in-memory machine behind it instead of a libvirt domain. `python tests/support/ipmi_bmc.py PORT USER PASSWORD`."""

from __future__ import annotations

import sys

from pyghmi.ipmi import bmc


class MemoryMachine(bmc.Bmc):
    def __init__(self, user: str, password: str, port: int):
        super().__init__({user: password}, port=port, address="127.0.0.1")
        self.power, self.boot = "off", "default"

    def get_power_state(self):
        return self.power

    def power_on(self):
        self.power = "on"

    def power_off(self):
        self.power = "off"

    def get_boot_device(self):
        return self.boot

    def set_boot_device(self, bootdevice):
        self.boot = bootdevice


if __name__ == "__main__":
    port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    print("listening", flush=True)
    MemoryMachine(user, password, port).listen()
