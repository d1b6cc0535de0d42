"""A running `serve` follows `generate`: a node added while it runs is served, through the output
directory's stable links, also after older generations are removed."""

from __future__ import annotations

import signal
import urllib.error
import urllib.request

from tests.support.generate_trees import changed_templates, fake_ipxe, small_cluster
from tests.support.processes import cli, start_serve, wait_for

WORKER_2 = "52:54:00:00:00:22"


def boot_script(url: str, mac: str) -> bytes:
    try:
        with urllib.request.urlopen(f"{url}/ipxe?mac={mac}") as r:
            return r.read()
    except urllib.error.HTTPError:
        return b""


def test_serve_picks_up_a_node_added_by_generate(tmp_path):
    before = small_cluster(tmp_path / "before.yaml", keep=("cp-1", "worker-1"))
    after = small_cluster(tmp_path / "after.yaml", keep=("cp-1", "worker-1", "worker-2"))
    out, ipxe = tmp_path / "output", fake_ipxe(tmp_path / "ipxe")

    def generate(config, templates="/nonexistent"):
        done = cli("--config", str(config), "--output", str(out), "--templates", str(templates), "generate",
                   "--assets", "/nonexistent", "--ipxe-dir", str(ipxe))
        assert done.returncode == 0, done.stderr

    generate(before)
    proc, url, _ = start_serve(out)
    try:
        assert b"flatcar_production_pxe.vmlinuz" not in boot_script(url, WORKER_2)
        generate(after)
        generate(after, changed_templates(tmp_path / "templates"))  # the first generation is gone now
        wait_for(lambda: b"flatcar_production_pxe.vmlinuz" in boot_script(url, WORKER_2),
                 timeout=10, what="serve to answer the added node")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
