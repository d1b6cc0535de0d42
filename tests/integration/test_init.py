"""`init --yes` refusing to start without its assets. (`init` end to end, its health gate against a
real API server, is in tests/k8s/test_init_real.py.)"""

from __future__ import annotations

import subprocess
import sys

from tests.support.assets import standin_assets
from tests.support.paths import EXAMPLE, REPO, flatcar_version_of


def test_init_refuses_missing_assets_before_anything_starts(tmp_path):
    """No serve, no power-on, no output: each missing file named, and how to fetch them."""
    assets = standin_assets(tmp_path / "assets", EXAMPLE)
    (assets / "flatcar" / flatcar_version_of() / "flatcar_production_image.bin.bz2.sig").unlink()
    (assets / "sysext" / "kubernetes-v1.36.3-x86-64.raw").unlink()
    out = tmp_path / "output"
    done = subprocess.run([sys.executable, "-m", "app", "--config", str(EXAMPLE), "--output", str(out), "init",
                           "--yes", "--assets", str(assets), "--dhcp", "none", "--tftp", "none"],
                          cwd=REPO, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert done.returncode == 1
    assert "2 file(s) they fetch are not in" in done.stderr and "nothing was started or powered on" in done.stderr
    assert f"{assets}/flatcar/{flatcar_version_of()}/flatcar_production_image.bin.bz2.sig is missing" in done.stderr
    assert "kubernetes-v1.36.3-x86-64.raw is not in" in done.stderr
    assert f"bootstrap-node assets fetch {assets}" in done.stderr
    assert not out.exists()
