"""The install stage's script, run as rendered (bash, with stand-ins for curl, flatcar-install and
systemctl that only record): what it reports to the appliance about the node's clock."""

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
# Stand-in curl: POSTs are appended to $RECORD; a GET writes the final config and, with -D, headers
# whose Date is $APPLIANCE_DATE.
out=/dev/stdout headers= data= method=GET
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out=$2; shift ;; -D) headers=$2; shift ;; -d) data=$2; shift ;; -X) method=$2; shift ;;
    -H|-m|--retry|--retry-delay) shift ;;
  esac
  shift
done
if [ "$method" = POST ]; then echo "$data" >> "$RECORD"; exit 0; fi
echo '{"ignition":{"version":"3.4.0"}}' > "$out"
[ -z "$headers" ] || printf 'HTTP/1.1 200 OK\r\nDate: %s\r\n\r\n' "$APPLIANCE_DATE" > "$headers"
"""


def run_install(out: Path, tmp_path: Path, appliance_offset: float) -> list[dict]:  # noqa: F811
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    script = files_of(ignition(out, "worker-1-install"))["/opt/bootstrap-node/install.sh"].decode()
    work = tmp_path / "work"
    (work / "bin").mkdir(parents=True)
    credential = work / "credential"
    credential.write_text("secret")
    script = script.replace(CREDENTIAL_PATH, str(credential)).replace("/tmp/final", f"{work}/final")
    (work / "install.sh").write_text(script)
    (work / "bin" / "curl").write_text(CURL)
    for name in ("flatcar-install", "systemctl"):
        (work / "bin" / name).write_text("#!/bin/sh\nexit 0\n")
    for path in (work / "bin").iterdir():
        path.chmod(0o755)
    record = work / "events"
    env = {**os.environ, "PATH": f"{work / 'bin'}:/usr/bin:/bin", "RECORD": str(record),
           "APPLIANCE_DATE": email.utils.formatdate(time.time() + appliance_offset, usegmt=True)}
    run = subprocess.run(["bash", str(work / "install.sh")], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
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
