"""The install stage's script, run as rendered (bash, with stand-ins for curl, lsblk, flatcar-install and
systemctl that only record or answer as told): what it reports about the node's clock, and the disks it
refuses to wipe."""

from __future__ import annotations

import email.utils
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from app.layout import CREDENTIAL_PATH
from tests.unit.test_generate import files_of, ignition, out  # noqa: F401 - `out` is the generated tree

CURL = r"""#!/bin/bash
# Stand-in curl: POSTs are appended to $RECORD (and how often each may be retried to $RECORD.retries);
# a GET writes the final config and, with -D, headers whose Date is $APPLIANCE_DATE.
out=/dev/stdout headers= data= method=GET retries=0
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out=$2; shift ;; -D) headers=$2; shift ;; -d) data=$2; shift ;; -X) method=$2; shift ;;
    --retry) retries=$2; shift ;; -H|-m|--retry-delay) shift ;;
  esac
  shift
done
if [ "$method" = POST ]; then echo "$data" >> "$RECORD"; echo "$retries" >> "$RECORD.retries"; exit 0; fi
echo '{"ignition":{"version":"3.4.0"}}' > "$out"
[ -z "$headers" ] || printf 'HTTP/1.1 200 OK\r\nDate: %s\r\n\r\n' "$APPLIANCE_DATE" > "$headers"
"""
LSBLK = r"""#!/bin/bash
# Stand-in lsblk: the disk list, or $DISK_RM $DISK_TRAN for the one disk there is ($DISK_PATH); and
# one column of one disk from $DISKS_TABLE (lines name<TAB>size<TAB>rm<TAB>tran<TAB>model).
column() { awk -F '\t' -v n="$2" -v c="$1" '$1 == n { print $c }' "$DISKS_TABLE"; }
case "$*" in
  "-dno NAME,SIZE,TRAN,RM,MODEL") printf 'sda 1.8T sata 0 "SAMSUNG"\nsdb 1G usb 1 Virtual_CDROM\n' ;;
  "-dno RM,TRAN $DISK_PATH") echo " $DISK_RM $DISK_TRAN" ;;
  "-dno NAME") cut -f1 "$DISKS_TABLE" ;;
  "-dnbo SIZE /dev/"*) column 2 "${3#/dev/}" ;;
  "-dno RM /dev/"*) column 3 "${3#/dev/}" ;;
  "-dno TRAN /dev/"*) column 4 "${3#/dev/}" ;;
  "-dno MODEL /dev/"*) column 5 "${3#/dev/}" ;;
  *) echo "lsblk: $*: not a block device" >&2; exit 32 ;;
esac
"""
DISKS = [("sda", "2000398934016", "0", "sata", "SAMSUNG MZ7L31T9"), ("sdb", "1073741824", "1", "usb", "Virtual CDROM")]
DISK = "/dev/disk/by-id/nvme-eui.0025385b71b2c321"  # worker-1's install_disk in the example


def run_install(out: Path, tmp_path: Path, appliance_offset: float = 0,  # noqa: F811
                disk: tuple[str, str, str] = (DISK, "0", "nvme"), ok: bool = True,
                disks: list[tuple[str, ...]] | None = None, by_id: dict[str, str] | None = None) -> list[dict]:
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    script = files_of(ignition(out, "worker-1-install"))["/opt/bootstrap-node/install.sh"].decode()
    work = tmp_path / "work"
    (work / "bin").mkdir(parents=True)
    credential = work / "credential"
    credential.write_text("secret")
    script = script.replace(CREDENTIAL_PATH, str(credential)).replace("/tmp/final", f"{work}/final")
    script = script.replace("byid=/dev/disk/by-id", f"byid={work}/by-id")
    (work / "by-id").mkdir()
    for link, target in (by_id or {"ata-SAMSUNG_MZ7L31T9_S6ESNE0R": "/dev/sda", "wwn-0x5002538": "/dev/sda",
                                    "usb-Virtual_CDROM-0:0": "/dev/sdb"}).items():
        (work / "by-id" / link).symlink_to(target)
    table = work / "disks.tsv"
    table.write_bytes(b"".join(b"\t".join(f.encode("utf-8", "surrogateescape") for f in row) + b"\n"
                               for row in (DISKS if disks is None else disks)))
    (work / "install.sh").write_text(script)
    (work / "bin" / "curl").write_text(CURL)
    (work / "bin" / "lsblk").write_text(LSBLK)
    for name in ("flatcar-install", "systemctl"):
        (work / "bin" / name).write_text("#!/bin/sh\nexit 0\n")
    for path in (work / "bin").iterdir():
        path.chmod(0o755)
    record = work / "events"
    env = {**os.environ, "PATH": f"{work / 'bin'}:/usr/bin:/bin", "RECORD": str(record),
           "APPLIANCE_DATE": email.utils.formatdate(time.time() + appliance_offset, usegmt=True),
           "DISK_PATH": disk[0], "DISK_RM": disk[1], "DISK_TRAN": disk[2], "DISKS_TABLE": str(table)}
    run = subprocess.run(["bash", str(work / "install.sh")], env=env, capture_output=True, text=True)
    assert (run.returncode == 0) is ok, run.stderr
    return [json.loads(line) for line in record.read_text().splitlines()]


def test_a_clock_two_hours_behind_the_appliance_is_reported(out, tmp_path):  # noqa: F811
    events = run_install(out, tmp_path, appliance_offset=2 * 3600)
    clock = [e for e in events if "clock" in e["message"]]
    assert [e["phase"] for e in clock] == ["installing", "installed"]
    skew = int(re.search(r"clock is (-?\d+)s off the appliance's", clock[0]["message"])[1])
    assert -7260 < skew < -7140 and "set network.ntp" in clock[0]["message"]
    assert clock[1]["message"].startswith("Flatcar ") and "clock is" in clock[1]["message"]


def test_a_clock_within_a_minute_is_not_mentioned(out, tmp_path):  # noqa: F811
    events = run_install(out, tmp_path, appliance_offset=0)
    assert [e["phase"] for e in events] == ["installing", "installing", "installed"]
    assert not [e for e in events if "clock" in e["message"]]


def test_only_the_installed_report_outlasts_a_takeover(out, tmp_path):  # noqa: F811
    """A report lost while no replica leads would leave the install's window in use: `installed` is
    retried (docs/high-availability.md); the progress reports are not worth waiting for."""
    events = run_install(out, tmp_path)
    retries = (tmp_path / "work" / "events.retries").read_text().split()
    assert list(zip([e["phase"] for e in events], retries, strict=True)) == [
        ("installing", "0"), ("installing", "0"), ("installed", "10")]


def test_a_removable_disk_is_refused_before_flatcar_install(out, tmp_path):  # noqa: F811
    events = run_install(out, tmp_path, disk=(DISK, "1", "sata"), ok=False)
    assert [e["phase"] for e in events] == ["installing", "failed"]
    assert events[-1]["message"].startswith(f"refusing to install to {DISK}: it is removable or on USB")
    assert "sdb 1G usb 1 Virtual_CDROM" in events[-1]["message"]  # the disks it has


def test_a_usb_disk_is_refused(out, tmp_path):  # noqa: F811
    events = run_install(out, tmp_path, disk=(DISK, "0", "usb"), ok=False)
    assert events[-1]["phase"] == "failed" and "removable or on USB" in events[-1]["message"]


def test_a_disk_the_machine_lacks_is_named_with_the_ones_it_has(out, tmp_path):  # noqa: F811
    events = run_install(out, tmp_path, disk=("/dev/disk/by-id/other", "0", "sata"), ok=False)
    assert events[-1]["phase"] == "failed"
    assert events[-1]["message"].startswith(f"{DISK} is not a disk on this machine; it has: sda 1.8T sata 0 SAMSUNG;")


def test_the_first_report_carries_the_machines_disks(out, tmp_path):  # noqa: F811
    events = run_install(out, tmp_path)
    assert events[0]["disks"] == [
        {"name": "sda", "id": "ata-SAMSUNG_MZ7L31T9_S6ESNE0R", "size": 2000398934016, "removable": False,
         "transport": "sata", "model": "SAMSUNG MZ7L31T9"},
        {"name": "sdb", "id": "usb-Virtual_CDROM-0:0", "size": 1073741824, "removable": True,
         "transport": "usb", "model": "Virtual CDROM"}]
    assert all("disks" not in e for e in events[1:])  # once: the later reports stay small


def test_the_disk_report_is_bounded_and_valid_json_whatever_the_firmware_says(out, tmp_path):  # noqa: F811
    """Model strings with quotes, backslashes, control characters, HTML and invalid UTF-8, a size that is
    not a number, a hostile device name, and 100 disks: still one JSON object, at most 32 disks, each
    string printable ASCII of at most 64 characters."""
    hostile = 'A"B\\C\x1b[31m<script>alert(1)</script>\udcff' + "x" * 200
    rows = [("sda", "12abc", "0", "sata\x07", hostile), ("sd$(reboot)b", "1", "1", "usb", "ok")]
    rows += [(f"sd{i}", "1000", "0", "nvme", f"disk {i}") for i in range(100)]
    events = run_install(out, tmp_path, disks=rows)
    disks = events[0]["disks"]  # run_install parsed every line as JSON
    assert len(disks) == 32
    first = disks[0]
    assert first["size"] == 12 and first["transport"] == "sata"
    assert len(first["model"]) == 64 and first["model"].startswith("ABC[31m<script>")
    assert all(" " <= c <= "~" and c not in '"\\' for d in disks for v in d.values() if isinstance(v, str) for c in v)
    assert disks[1]["name"] == "sdrebootb"


def test_the_disk_report_with_this_machines_real_lsblk(out, tmp_path):  # noqa: F811
    """The report's function with util-linux's own lsblk (no stand-in): valid JSON naming exactly the
    disks lsblk lists here, with their sizes in bytes."""
    lsblk = shutil.which("lsblk")
    if lsblk is None or shutil.which("bash") is None:
        pytest.skip("needs bash and util-linux's lsblk")
    real = subprocess.run([lsblk, "-dbno", "NAME,SIZE"], capture_output=True, text=True).stdout.split()
    if not real:
        pytest.skip("lsblk sees no block device here")
    script = files_of(ignition(out, "worker-1-install"))["/opt/bootstrap-node/install.sh"].decode()
    start = script.index("byid=/dev/disk/by-id")
    function = script[start:script.index("report installing", start)]
    run = subprocess.run(["bash", "-c", f"set -eu\n{function}\ndisks_json"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    reported = json.loads(run.stdout)
    assert [(d["name"], d["size"]) for d in reported] == [(n, int(s)) for n, s in zip(real[::2], real[1::2], strict=True)][:32]
