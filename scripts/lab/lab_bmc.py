"""The lab's BMCs (LAB_POWER=redfish|ipmi): the lab machines become libvirt domains, and a BMC server
written by someone else powers them: sushy-tools' Redfish emulator (libvirt driver) or virtualbmc
(IPMI). The lab then starts no VM itself: `bootstrap-node power on` (or `init`) does, through the
BMC.

libvirtd runs inside the lab's LAN namespace, so a domain's `<interface type='bridge'>` gets its
vnetN there, on br0, on every power-on; the BMC servers stay in the root namespace and reach libvirt
over its unix socket, so `bootstrap-node power` run on the host reaches them on 127.0.0.1.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from xml.sax.saxutils import escape

QEMU_CONF = Path("/etc/libvirt/qemu.conf")
MARKER = "# written by bootstrap-node's scripts/lab"
# No systemd, no cgroups or mount namespaces for QEMU, run as root: what libvirtd needs in this sandbox.
QEMU_SETTINGS = ('user = "root"\ngroup = "root"\ndynamic_ownership = 0\nsecurity_driver = "none"\n'
                 'remember_owner = 0\nnamespaces = [ ]\ncgroup_controllers = [ ]\n')
LIBVIRT_URI = "qemu:///system"
SOCKET = Path("/run/libvirt/libvirt-sock")
USER = "admin"
REDFISH_PORT = 8000
IPMI_BASE_PORT = 6230
VBMC_PORT = 50891  # vbmcd's control port; the lab's own, not the default
NEEDS = {"libvirtd": "libvirt-daemon libvirt-daemon-driver-qemu", "virsh": "libvirt-clients",
         "virtlogd": "libvirt-daemon"}
DISK_BYTES = 1 << 30
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"


class BmcError(Exception):
    pass


def missing(power: str) -> list[str]:
    gone = [f"{tool} (Debian: {pkg})" for tool, pkg in NEEDS.items() if shutil.which(tool) is None]
    if power == "ipmi" and shutil.which("ipmitool") is None:
        gone.append("ipmitool (Debian: ipmitool)")
    python = "sushy_tools" if power == "redfish" else "vbmc_lib"
    for module in ("libvirt", python):
        if subprocess.run([sys.executable, "-c", f"import {module.replace('vbmc_lib', 'virtualbmc')}"],
                          capture_output=True).returncode != 0:
            gone.append(f"python module {module} (pip install -e '.[lab]'; libvirt-python needs libvirt-dev)")
    return gone


def prepare_host() -> None:
    """The user, directories and qemu.conf libvirtd needs here; an existing qemu.conf that is not
    ours is left alone (the settings it must have are listed instead)."""
    if subprocess.run(["getent", "group", "libvirt-qemu"], capture_output=True).returncode != 0:
        subprocess.run(["groupadd", "-r", "libvirt-qemu"], check=True)
    if subprocess.run(["id", "libvirt-qemu"], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-r", "-g", "libvirt-qemu", "-d", "/var/lib/libvirt", "-s", "/usr/sbin/nologin",
                        "libvirt-qemu"], check=True)
    for d in ("/var/log/libvirt/qemu", "/run/libvirt", "/var/lib/libvirt/qemu", "/var/cache/libvirt/qemu"):
        Path(d).mkdir(parents=True, exist_ok=True)
    if not QEMU_CONF.exists():
        QEMU_CONF.parent.mkdir(parents=True, exist_ok=True)
        QEMU_CONF.write_text(f"{MARKER}\n{QEMU_SETTINGS}")
    elif MARKER not in QEMU_CONF.read_text():
        sys.stderr.write(f"lab: using the existing {QEMU_CONF}; libvirtd here needs:\n{QEMU_SETTINGS}")


def virsh(*args: str, check: bool = True) -> str:
    done = subprocess.run(["virsh", "-q", "-c", LIBVIRT_URI, *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise BmcError(f"virsh {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def libvirt_answers() -> bool:
    return SOCKET.exists() and subprocess.run(["virsh", "-c", LIBVIRT_URI, "version"],
                                              capture_output=True).returncode == 0


def wait_for_libvirt(alive, timeout: float = 60.0) -> None:
    """The first start probes QEMU (about 8 s); `alive()` is False once libvirtd has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if libvirt_answers():
            return
        if not alive():
            raise BmcError("libvirtd exited; see libvirtd.log in the lab directory")
        time.sleep(0.3)
    raise BmcError(f"libvirtd did not answer within {timeout:.0f}s")


def domain_xml(name: str, mac: str, firmware: str, directory: Path, memory_mb: int, accel: str) -> str:
    """A machine like the QEMU-direct lab's: network boot, serial console to a file, and (as its
    -no-reboot) a reboot ends the domain: the stand-in reboots after installing."""
    if firmware == "uefi":
        loader = (f"<loader readonly='yes' type='pflash'>{OVMF_CODE}</loader>"
                  f"<nvram template='{OVMF_VARS}'>{escape(str(directory / f'{name}.OVMF_VARS.fd'))}</nvram>")
        rom = "<rom enabled='no'/>"  # OVMF's own PXE client, as in the QEMU-direct lab
    else:
        loader, rom = "", ""
    kind = "kvm" if accel == "kvm" else "qemu"
    serial = escape(str(directory / f"{name}.serial"))
    # A disk (sparse; the stand-in never writes it): the Redfish emulator refuses a boot override to
    # Hdd for a domain without one, and the nodes' install_disk is /dev/vda.
    disk = directory / f"{name}.disk.raw"
    if not disk.exists():
        with disk.open("wb") as f:
            f.truncate(DISK_BYTES)
    return f"""<domain type='{kind}'>
  <name>{escape(name)}</name>
  <memory unit='MiB'>{memory_mb}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>{loader}<boot dev='network'/><bios useserial='yes'/></os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{escape(str(disk))}'/>
      <target dev='vda' bus='virtio'/></disk>
    <interface type='bridge'><source bridge='br0'/><mac address='{mac}'/><model type='virtio'/>{rom}</interface>
    <serial type='file'><source path='{serial}' append='on'/><target port='0'/></serial>
    <console type='file'><source path='{serial}' append='on'/><target type='serial' port='0'/></console>
  </devices>
</domain>
"""


def define(name: str, xml: str, directory: Path) -> None:
    if virsh("domstate", name, check=False).strip():
        virsh("destroy", name, check=False)
        virsh("undefine", name, "--nvram", check=False)
    path = directory / f"{name}.domain.xml"
    path.write_text(xml)
    virsh("define", str(path))


def undefine(name: str) -> None:
    virsh("destroy", name, check=False)
    virsh("undefine", name, "--nvram", check=False)


def password_file(directory: Path) -> tuple[str, Path]:
    """A fresh password for the lab's BMCs, in a 0600 file cluster.yaml points at."""
    password = secrets.token_urlsafe(12)
    path = directory / "bmc.pass"
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(password + "\n")
    return password, path


def sushy_config(directory: Path, password: str) -> Path:
    import bcrypt
    auth = directory / "htpasswd"
    auth.write_text(f"{USER}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()}\n")
    auth.chmod(0o600)
    config = directory / "sushy.conf"
    config.write_text(f"SUSHY_EMULATOR_LIBVIRT_URI = {LIBVIRT_URI!r}\nSUSHY_EMULATOR_AUTH_FILE = {str(auth)!r}\n"
                      "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\n"
                      f"SUSHY_EMULATOR_STATE_DIR = {str(directory / 'sushy-state')!r}\n")
    return config


def sushy_command(config: Path) -> list[str]:
    return [str(Path(sys.executable).parent / "sushy-emulator"), "--config", str(config), "--port", str(REDFISH_PORT)]


def wait_for_port(url: str, alive, timeout: float = 30.0) -> None:
    import urllib.request
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if not alive():
                raise BmcError(f"the BMC server behind {url} exited; see its log in the lab directory") from None
            time.sleep(0.3)
    raise BmcError(f"{url} did not answer within {timeout:.0f}s")


def vbmc(directory: Path, *args: str) -> None:
    done = subprocess.run([str(Path(sys.executable).parent / "vbmc"), *args], capture_output=True, text=True,
                          env={"VIRTUALBMC_CONFIG": str(directory / "vbmc.conf"), "PATH": "/usr/bin:/bin"})
    if done.returncode != 0:
        raise BmcError(f"vbmc {' '.join(args)}: {(done.stderr or done.stdout).strip()}")


def vbmc_config(directory: Path) -> Path:
    config = directory / "vbmc.conf"
    config.write_text(f"[default]\nserver_port = {VBMC_PORT}\nconfig_dir = {directory / 'vbmc'}\n"
                      f"pid_file = {directory / 'vbmcd.pid'}\n[log]\nlogfile = {directory / 'vbmcd.log'}\n")
    (directory / "vbmc").mkdir(exist_ok=True)
    return config


def bmc_entries(power: str, names: list[str], secret: Path) -> dict[str, str]:
    """name -> the flow-style `bmc:` mapping for the lab's cluster.yaml."""
    entries = {}
    for i, name in enumerate(names):
        if power == "redfish":
            address, system = f"http://127.0.0.1:{REDFISH_PORT}", f", system: {name}"
        else:
            address, system = f"127.0.0.1:{IPMI_BASE_PORT + i}", ""
        entries[name] = (f"{{address: '{address}', username: {USER}, password_file: {secret}{system}}}")
    return entries


def vbmc_add(directory: Path, name: str, port: int, password: str, alive, timeout: float = 30.0) -> None:
    """One IPMI endpoint per domain on 127.0.0.1:<port> (vbmcd must be answering first)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            vbmc(directory, "list")
            break
        except BmcError:
            if not alive() or time.monotonic() > deadline:
                raise BmcError("vbmcd is not answering; see vbmcd.log in the lab directory") from None
            time.sleep(0.3)
    # vbmc takes the password on its command line: acceptable for a lab's throw-away password only.
    vbmc(directory, "add", name, "--port", str(port), "--address", "127.0.0.1", "--username", USER,
         "--password", password, "--libvirt-uri", LIBVIRT_URI)
    vbmc(directory, "start", name)
