"""IPMI over LAN through `ipmitool` (Debian: ipmitool), not pyghmi.

pyghmi 1.6.19 crashes against virtualbmc (it offers cipher suite 17, virtualbmc answers with 3:
`struct.error` in `_got_rakp2`); ipmitool with `-C 3` works with it and with real BMCs, and passing
`-C 3` also spares a 10 s wait on BMCs that do not answer "Get Channel Cipher Suites" (OpenIPMI's
ipmi_sim). The password goes through the environment (`-E` reads IPMI_PASSWORD), never argv,
where any user on the host could read it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from app.cluster.model import Bmc
from app.power.base import UNKNOWN, PowerError, PowerStatus, Way, read_password

TIMEOUT = 60.0
DEFAULT_PORT = 623
# ipmitool's words on stderr -> what went wrong, for a person.
BAD_LOGIN = ("unauthorized name", "hmac is invalid", "invalid user name", "password",
             "insufficient privilege", "unauthorized role")
BOOT_DEVICES = {"force pxe": "pxe", "force boot from default hard-drive": "disk", "no override": "none",
                "force boot from cd/dvd": "cd", "force boot into bios setup": "bios"}


def host_port(address: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]:port` -> (host, port)."""
    match = re.fullmatch(r"\[(.+)\](?::(\d+))?|([^:]+)(?::(\d+))?", address)
    if not match:
        return address, DEFAULT_PORT
    host = match[1] or match[3]
    return host, int(match[2] or match[4] or DEFAULT_PORT)


class Ipmi(Way):
    name = "ipmi"

    def __init__(self, node: str, bmc: Bmc, password: str | None = None, timeout: float = TIMEOUT):
        super().__init__(node)
        self.bmc, self.timeout = bmc, timeout
        self.host, self.port = host_port(bmc.address)
        self._password = password

    def on(self) -> None:
        self._run("chassis", "power", "on")

    def off(self) -> None:
        self._run("chassis", "power", "off")

    def status(self) -> PowerStatus:
        power = self._run("chassis", "power", "status").strip().rsplit(" ", 1)[-1].lower()
        return PowerStatus(power or UNKNOWN, self._boot_override())

    def pxe_once(self) -> None:
        self._run("chassis", "bootdev", "pxe")  # ipmitool's default: the next boot only

    def boot_disk(self) -> None:
        self._run("chassis", "bootdev", "disk", "options=persistent")

    def location(self) -> str:
        return f"IPMI {self.host}:{self.port}"

    def _boot_override(self) -> str:
        """From `chassis bootparam get 5` (boot flags); `unknown` when the BMC does not say."""
        try:
            text = self._run("chassis", "bootparam", "get", "5").lower()
        except PowerError:  # a BMC without boot parameter 5 still reports its power state
            return UNKNOWN
        selector = re.search(r"boot device selector\s*:\s*(.+)", text)
        device = BOOT_DEVICES.get(selector[1].strip(), selector[1].strip()) if selector else UNKNOWN
        if "boot flag invalid" in text or device == "none":
            return "none"
        scope = "once" if "only next boot" in text else "continuous" if "all future boots" in text else UNKNOWN
        return f"{device} ({scope})"

    def _run(self, *args: str) -> str:
        binary = shutil.which("ipmitool")
        if binary is None:
            raise self.fail("ipmitool is not installed (Debian: ipmitool); power: ipmi needs it")
        if self._password is None:
            self._password = read_password(self.node, self.bmc)
        command = [binary, "-I", "lanplus", "-C", "3", "-H", self.host, "-p", str(self.port),
                   "-U", self.bmc.username, "-E", *args]
        try:
            done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=self.timeout,
                                  env={**os.environ, "IPMI_PASSWORD": self._password}, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise self.fail(f"BMC {self.host}:{self.port} did not answer `{' '.join(args)}` "
                            f"within {self.timeout:.0f}s") from None
        if done.returncode != 0:
            raise self.fail(self._explain(done.stderr, args))
        return done.stdout

    def _explain(self, stderr: str, args: tuple[str, ...]) -> str:
        said = " / ".join(line.strip() for line in stderr.splitlines() if line.strip()) or "no output"
        where = f"BMC {self.host}:{self.port}"
        lowered = said.lower()
        if any(word in lowered for word in BAD_LOGIN):
            return f"{where} refused user {self.bmc.username!r}: check bmc.username and the password ({said})"
        if "unable to establish" in lowered or "no response" in lowered:
            return f"no IPMI session with {where} (unreachable, IPMI over LAN off, or a wrong password): {said}"
        if "invalid command" in lowered or "not supported" in lowered:
            return f"{where} does not support `{' '.join(args)}`: {said}"
        return f"{where} answered `{' '.join(args)}` with: {said}"
