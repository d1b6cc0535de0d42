"""A virtual rack on one Linux host: network namespaces, a bridge, a site DHCP server that knows
nothing about PXE, the appliance running `bootstrap-node serve`, and QEMU machines (BIOS and UEFI)
that PXE-boot from it. Root only. Everything made is recorded in build/lab/state.json and removed
by `down`, by process id and namespace name.

Topology:
    <prefix>lan:  br0 + one tap per VM            (QEMU runs here)
    <prefix>site: site0 10.99.0.1, dnsmasq DHCP 10.99.0.100-150 (no PXE options)
    <prefix>appl: appl0 10.99.0.2, bootstrap-node serve (proxy DHCP, TFTP, HTTP :8080)

With power="redfish" or "ipmi" the machines are libvirt domains behind a BMC server instead (bmc.py),
and the lab's cluster.yaml (written to <dir>/cluster.yaml) gives each node its `bmc:`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import lab_bmc as bmc  # noqa: E402

REPO = HERE.parent.parent
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
# OVMF's own switches (OvmfPkg/RUNTIME_CONFIG.md): without its PXE client and IPv6, the NIC's only
# boot option left is "UEFI HTTPv4", as on a machine set to HTTP boot in its firmware menu.
HTTP_BOOT_ONLY = ["-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
                  "-fw_cfg", "name=opt/org.tianocore/IPv6Support,string=n"]
NEEDS = {"ip": "iproute2", "dnsmasq": "dnsmasq-base", "qemu-system-x86_64": "qemu-system-x86",
         "busybox": "busybox-static", "cpio": "cpio",
         # the stand-in's real Ignition: built from source (scripts/ignition-binaries), and usermod
         "go": "golang-go", "usermod": "passwd"}


class LabError(Exception):
    pass


@dataclass
class Machine:
    name: str
    mac: str
    firmware: str  # "bios" | "uefi" (OVMF's PXE client) | "uefi-http" (OVMF's HTTP Boot client only)


# The lab's machines: three nodes of scripts/lab/cluster.yaml and one stranger.
MACHINES = [Machine("cp-1", "52:54:00:aa:bb:01", "bios"), Machine("worker-1", "52:54:00:aa:bb:02", "uefi"),
            Machine("worker-2", "52:54:00:aa:bb:03", "uefi-http"), Machine("stranger", "52:54:00:aa:bb:99", "uefi")]


@dataclass
class State:
    prefix: str
    dir: str
    namespaces: list[str] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)
    domains: list[str] = field(default_factory=list)  # libvirt domains defined (power redfish/ipmi)

    def save(self) -> None:
        tmp = Path(self.dir) / "state.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(Path(self.dir) / "state.json")

    @classmethod
    def load(cls, directory: Path) -> State | None:
        try:
            return cls(**json.loads((directory / "state.json").read_text()))
        except FileNotFoundError:
            return None


def missing_tools() -> list[str]:
    gone = [f"{tool} (Debian: {pkg})" for tool, pkg in NEEDS.items() if shutil.which(tool) is None]
    if not OVMF_CODE.exists():
        gone.append(f"{OVMF_CODE} (Debian: ovmf)")
    if not Path("/usr/lib/ipxe/undionly.kpxe").exists():
        gone.append("/usr/lib/ipxe/undionly.kpxe (Debian: ipxe)")
    return gone


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(args)}: {result.stderr.strip()}")
    return result


class Lab:
    def __init__(self, directory: Path | None = None, prefix: str = "bnlab", assets: Path | None = None,
                 power: str = "qemu", memory_mb: int = 512, accel: str = "tcg"):
        if power not in ("qemu", "redfish", "ipmi"):
            raise LabError(f"LAB_POWER={power!r}: use qemu (the lab starts VMs), redfish or ipmi")
        self.dir = (directory or REPO / "build" / "lab").resolve()
        self.prefix = prefix
        self.power, self.memory_mb, self.accel = power, memory_mb, accel
        # Through BMCs, the lab's cluster.yaml carries each node's bmc: entry, so it is written per lab.
        self.config = HERE / "cluster.yaml" if power == "qemu" else self.dir / "cluster.yaml"
        self.output = self.dir / "output"
        self.assets = assets or self.dir / "assets"  # LAB_ASSETS: real Flatcar artifacts instead
        self.assets_given = assets is not None
        self.lan, self.site, self.appl = f"{prefix}lan", f"{prefix}site", f"{prefix}appl"
        self.state = State.load(self.dir) or State(prefix, str(self.dir))

    # -- up ----------------------------------------------------------------------------------------
    def up(self, appliance: bool = True) -> None:
        """The rack; `appliance=False`: everything but generate and serve in <prefix>appl, for an
        appliance started there another way (tests/e2e/test_lab_docker.py: `docker run … init`)."""
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, taps, ports 67/69)")
        if gone := missing_tools() + (bmc.missing(self.power) if self.power != "qemu" else []):
            raise LabError("missing: " + ", ".join(gone))
        if self.state.namespaces:
            raise LabError(f"a lab is already up in {self.dir}; run `down` first")
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)  # dnsmasq (as nobody) must reach output/tftp
        if self.power != "qemu":
            self._bmc_config()
        self._artifacts()
        if appliance:
            self._generate()
        # A new rack: the machines of an earlier lab run are not installed, whatever its log says.
        (self.output / "events.jsonl").unlink(missing_ok=True)
        self._network()
        self._site_dhcp()
        if appliance:
            self._appliance()
        if self.power != "qemu":
            self._bmcs()

    # -- BMCs (power redfish / ipmi) ---------------------------------------------------------------
    def _bmc_config(self) -> None:
        """cluster.yaml with `power:` and each node's `bmc:`; the password in a 0600 file beside it."""
        self._bmc_password, secret = bmc.password_file(self.dir)
        entries = bmc.bmc_entries(self.power, [m.name for m in self.nodes], secret)
        lines = []
        for line in (HERE / "cluster.yaml").read_text().splitlines():
            name = next((n for n in entries if line.startswith(f"  - {{name: {n},")), None)
            lines.append(line[:-1] + f", bmc: {entries[name]}}}" if name else line)
        lines.append(f"power: {self.power}")
        self.config.write_text("\n".join(lines) + "\n")

    def _bmcs(self) -> None:
        if bmc.libvirt_answers():  # one libvirtd per host: its socket and state directories are fixed
            raise LabError(f"a libvirtd already answers on {bmc.SOCKET}; stop it (or the lab that started it)")
        bmc.prepare_host()
        self._spawn("virtlogd", self.lan, ["virtlogd"], self.dir / "virtlogd.log")
        self._spawn("libvirtd", self.lan, ["libvirtd"], self.dir / "libvirtd.log")
        bmc.wait_for_libvirt(lambda: _alive(self.state.pids["libvirtd"]))
        for m in self.nodes:
            # The domains get no OVMF fw_cfg switches: the HTTP Boot machine boots with BIOS behind a BMC.
            firmware = "bios" if m.firmware == "uefi-http" else m.firmware
            bmc.define(m.name, bmc.domain_xml(m.name, m.mac, firmware, self.dir, self.memory_mb, self.accel),
                       self.dir)
            self.state.domains.append(m.name)
            self.state.save()
        if self.power == "redfish":
            config = bmc.sushy_config(self.dir, self._bmc_password)
            self._spawn("sushy-emulator", self.lan, bmc.sushy_command(config), self.dir / "sushy.log", netns=False)
            bmc.wait_for_port(f"http://127.0.0.1:{bmc.REDFISH_PORT}/redfish/v1/",
                              lambda: _alive(self.state.pids["sushy-emulator"]))
        else:
            config = bmc.vbmc_config(self.dir)
            env = {"VIRTUALBMC_CONFIG": str(config)}
            self._spawn("vbmcd", self.lan, [str(Path(sys.executable).parent / "vbmcd"), "--foreground"],
                        self.dir / "vbmcd.out", netns=False, env=env)
            for i, m in enumerate(self.nodes):
                bmc.vbmc_add(self.dir, m.name, bmc.IPMI_BASE_PORT + i, self._bmc_password,
                             lambda: _alive(self.state.pids["vbmcd"]))

    @property
    def nodes(self) -> list[Machine]:
        return [m for m in MACHINES if m.name != "stranger"]

    def _artifacts(self) -> None:
        version = _flatcar_version(self.config)
        kernel = self.assets / "flatcar" / version / "flatcar_production_pxe.vmlinuz"
        stamp = self.assets / "flatcar" / version / ".standin-sources"
        sources = _standin_sources()
        if self.assets_given and kernel.exists():
            pass  # real Flatcar artifacts (LAB_ASSETS): never rebuilt
        elif not kernel.exists() or not stamp.exists() or stamp.read_text() != sources:
            run(str(REPO / "scripts" / "standin" / "build"), str(self.assets), version)
            stamp.write_text(sources)
        image = self.assets / "flatcar" / version / "flatcar_production_image.bin.bz2"
        if not image.exists():  # flatcar-install's download target; the stand-in only checks it is there
            image.write_bytes(b"stand-in disk image")
        signature = image.with_name(image.name + ".sig")
        if not signature.exists():  # serve's preflight wants it beside the image, as flatcar-install does
            signature.write_bytes(b"stand-in signature")
        self._standin_sysexts()

    def _standin_sysexts(self) -> None:
        """Stand-in images for the sysexts the lab's cluster.yaml asks for, where none is there yet:
        generate hashes them into the final configs, and the stand-in fetches and checks them."""
        import yaml
        spec = yaml.safe_load(self.config.read_text())
        releases = [f"kubernetes-{spec['cluster']['k8s_version']}"]
        releases += [f"{s['name']}-{s['version']}" for s in spec.get("sysexts") or []]
        directory = self.assets / "sysext"
        directory.mkdir(parents=True, exist_ok=True)
        for release in releases:
            image = directory / f"{release}-x86-64.raw"
            if not image.exists():
                image.write_bytes(f"stand-in sysext {release}\n".encode())

    def _generate(self) -> None:
        result = subprocess.run([sys.executable, "-m", "app", "--config", str(self.config), "--output",
                                 str(self.output), "--templates", str(REPO / "templates"), "generate",
                                 "--assets", str(self.assets), "--ipxe-dir", "/usr/lib/ipxe"],
                                cwd=REPO, capture_output=True, text=True)
        if result.returncode != 0:
            raise LabError(f"generate failed:\n{result.stderr}")

    def _network(self) -> None:
        for ns in (self.lan, self.site, self.appl):
            run("ip", "netns", "add", ns)
            self.state.namespaces.append(ns)
            self.state.save()
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", self.lan, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.lan, "link", "set", "br0", "up")
        for ns, inner, address in ((self.site, "site0", "10.99.0.1/24"), (self.appl, "appl0", "10.99.0.2/24")):
            outer = f"{inner}-br"
            run("ip", "-n", self.lan, "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns)
            run("ip", "-n", self.lan, "link", "set", outer, "master", "br0", "up")
            run("ip", "-n", ns, "addr", "add", address, "dev", inner)
            run("ip", "-n", ns, "link", "set", inner, "up")

    def _spawn(self, name: str, ns: str, args: list[str], log: Path, cwd: Path = REPO, netns: bool = True,
               env: dict[str, str] | None = None) -> int:
        """Start a process group we own (in namespace `ns`, or the host's with netns=False)."""
        command = ["ip", "netns", "exec", ns, *args] if netns else args
        with log.open("ab") as out:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                    start_new_session=True, env={**os.environ, **(env or {})})
        self.state.pids[name] = proc.pid
        self.state.save()
        return proc.pid

    def _site_dhcp(self) -> None:
        self._spawn("site-dhcp", self.site, [
            "dnsmasq", "--keep-in-foreground", "--log-facility=-", "--port=0", "--interface=site0",
            "--bind-interfaces", "--dhcp-range=10.99.0.100,10.99.0.150,255.255.255.0,1h",
            "--dhcp-option=3,10.99.0.1", "--dhcp-authoritative", "--log-dhcp", "--user=root", "--pid-file=",
            f"--dhcp-leasefile={self.dir / 'site.leases'}"], self.dir / "site-dhcp.log")

    def _appliance(self) -> None:
        self._spawn("serve", self.appl, [sys.executable, "-m", "app", "--config", str(self.config), "--output",
                                         str(self.output), "serve", "--assets", str(self.assets),
                                         "--access-log"],
                    self.dir / "serve.log")
        deadline = time.monotonic() + 90  # a loaded 2-core machine starts dnsmasq slowly
        while time.monotonic() < deadline:
            if any(e.get("kind") == "dnsmasq-ready" for e in self.events()):
                return
            if not _alive(self.state.pids["serve"]):
                raise LabError("serve exited:\n" + (self.dir / "serve.log").read_text()[-3000:])
            time.sleep(0.2)
        raise LabError("serve did not become ready in 90s; the end of its log:\n"
                       + (self.dir / "serve.log").read_text()[-3000:])

    # -- machines ----------------------------------------------------------------------------------
    def boot(self, machine: Machine, memory_mb: int = 512, accel: str = "tcg", disk_gb: int = 0) -> int:
        """Power a machine on (again); its serial console is appended to <dir>/<name>.serial."""
        # Named for the MAC, not the machine's place in MACHINES: a test may boot a machine of its own.
        tap = "tap" + machine.mac.replace(":", "")[-6:]
        if run("ip", "-n", self.lan, "link", "show", tap, check=False).returncode != 0:
            run("ip", "-n", self.lan, "tuntap", "add", tap, "mode", "tap")
            run("ip", "-n", self.lan, "link", "set", tap, "master", "br0", "up")
        nic = f"virtio-net-pci,netdev=n0,mac={machine.mac},bootindex=1"
        args = ["qemu-system-x86_64", "-accel", accel, "-m", str(memory_mb), "-smp", "1", "-display", "none",
                "-monitor", "none", "-no-reboot", "-serial", f"file:{self.serial_path(machine)}",
                "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no"]
        if disk_gb:  # real Flatcar installs to it (/dev/vda); the stand-in does not need one
            disk = self.dir / f"{machine.name}.disk.raw"
            if not disk.exists():
                with disk.open("wb") as f:
                    f.truncate(disk_gb << 30)
            args += ["-drive", f"file={disk},format=raw,if=virtio"]
        if machine.firmware.startswith("uefi"):
            vars_copy = self.dir / f"{machine.name}.OVMF_VARS.fd"
            shutil.copyfile(OVMF_VARS, vars_copy)
            # romfile= (empty): OVMF's own PXE client runs, as vendor firmware does, not QEMU's iPXE ROM.
            args += ["-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                     "-drive", f"if=pflash,format=raw,file={vars_copy}", "-device", nic + ",romfile="]
            if machine.firmware == "uefi-http":
                args += HTTP_BOOT_ONLY
        else:
            args += ["-device", nic]
        return self._spawn(machine.name, self.lan, args, self.dir / f"{machine.name}.qemu.log")

    def serial_path(self, machine: Machine) -> Path:
        return self.dir / f"{machine.name}.serial"

    def serial(self, machine: Machine) -> str:
        try:
            return self.serial_path(machine).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def running(self, machine: Machine) -> bool:
        if machine.name in self.state.domains:
            return bmc.virsh("domstate", machine.name, check=False).strip() == "running"
        pid = self.state.pids.get(machine.name)
        return bool(pid) and _alive(pid)

    def power_off(self, machine: Machine) -> None:
        pid = self.state.pids.pop(machine.name, None)
        if pid:
            _stop(pid)
            self.state.save()

    def events(self) -> list[dict]:
        return events_in(self.output)

    # -- down --------------------------------------------------------------------------------------
    def down(self) -> None:
        for name in list(self.state.domains):  # while libvirtd still runs
            bmc.undefine(name)
            self.state.domains.remove(name)
            self.state.save()
        for name, pid in list(self.state.pids.items()):
            _stop(pid)
            del self.state.pids[name]
            self.state.save()
        for ns in list(self.state.namespaces):
            run("ip", "netns", "del", ns, check=False)
            self.state.namespaces.remove(ns)
            self.state.save()
        (self.dir / "state.json").unlink(missing_ok=True)


def events_in(output: Path) -> list[dict]:
    """The event log of the serve whose --output is `output` ([] before it has one)."""
    try:
        lines = (output / "events.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def _standin_sources() -> str:
    """A digest of the stand-in's sources: its artifacts are rebuilt when they change."""
    import hashlib
    digest = hashlib.sha256()
    for path in sorted((REPO / "scripts" / "standin").rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _flatcar_version(config: Path) -> str:
    import yaml
    return str(yaml.safe_load(config.read_text())["cluster"]["flatcar_version"])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    if state == "Z":
        try:
            os.waitpid(pid, os.WNOHANG)  # reap our own child
        except ChildProcessError:
            pass
        return False
    return True


def _stop(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM the process group we started (ip netns exec + its child), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.1)
