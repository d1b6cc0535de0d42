"""Real BMC servers for tests: sushy-tools' Redfish emulator (fake driver: no VMs, state changes
land 1-11 s after a request) with Basic auth, started as a child process on a free local port."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

USER, PASSWORD = "admin", "bmc-test-password"


@dataclass
class FakeSystem:
    uuid: str
    name: str
    mac: str


def sushy_emulator() -> str | None:
    found = Path(sys.executable).parent / "sushy-emulator"
    return str(found) if found.exists() else shutil.which("sushy-emulator")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    """One sushy-emulator process; `stop()` ends it (and only it)."""

    def __init__(self, directory: Path, systems: list[FakeSystem], binary: str, tls: bool = False):
        import bcrypt
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        auth = directory / "htpasswd"
        auth.write_text(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()}\n")
        fake = [{"uuid": s.uuid, "name": s.name, "power_state": "Off", "nics": [{"mac": s.mac, "ip": "10.0.0.1"}]}
                for s in systems]
        config = directory / "emulator.conf"
        config.write_text(f"SUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_FAKE_SYSTEMS = {fake!r}\n"
                          f"SUSHY_EMULATOR_AUTH_FILE = {str(auth)!r}\n"
                          f"SUSHY_EMULATOR_STATE_DIR = {str(directory / 'state')!r}\n"
                          "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\n")
        self.log = directory / "emulator.log"
        tls_args = self_signed(directory) if tls else []
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([binary, "--config", str(config), "--port", str(self.port), *tls_args],
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sushy-emulator exited:\n{self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/redfish/v1/", timeout=2,  # the root needs no auth
                                       context=ssl._create_unverified_context()).close()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"sushy-emulator did not answer within {timeout:.0f}s:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def self_signed(directory: Path) -> list[str]:
    """A certificate for 127.0.0.1 that no one trusts: sushy-emulator's TLS arguments."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bmc.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    (directory / "bmc.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "bmc.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.TraditionalOpenSSL,
                                                          serialization.NoEncryption()))
    return ["--ssl-certificate", str(directory / "bmc.crt"), "--ssl-key", str(directory / "bmc.key")]
