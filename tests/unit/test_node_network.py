"""Other NICs on an installed node: a catch-all .network leaves them unmanaged, so only the provisioning
NIC (matched by MAC in 00-lan0.network) is configured."""

from __future__ import annotations

import pytest

from tests.unit.test_generate import files_of, ignition, out  # noqa: F401 - `out` is the generated tree

CATCH_ALL = "/etc/systemd/network/99-unmanaged.network"
FLATCAR_DEFAULT = "zz-default.network"  # Flatcar's /usr/lib/systemd/network file, DHCP on every link


@pytest.mark.parametrize("node", ["cp-1", "cp-2", "worker-1"])
def test_every_other_link_is_unmanaged_and_the_provisioning_nic_matches_first(out, node):  # noqa: F811
    files = files_of(ignition(out, node))
    text = files[CATCH_ALL].decode()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines == ["[Match]", "Name=*", "[Link]", "Unmanaged=yes"]
    # networkd takes the first file in lexical order (across /etc and /usr/lib): ours, then Flatcar's.
    networks = sorted(p.rsplit("/", 1)[1] for p in files if p.startswith("/etc/systemd/network/")
                      and p.endswith(".network"))
    assert networks == ["00-lan0.network", "99-unmanaged.network"]
    assert sorted([*networks, FLATCAR_DEFAULT])[-1] == FLATCAR_DEFAULT
