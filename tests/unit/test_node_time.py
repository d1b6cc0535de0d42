"""Time on the nodes: `network.ntp` rendered as NTP= on the provisioning NIC, and certificates valid from
a day before the appliance's clock (a node whose clock runs behind still accepts them)."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import yaml
from cryptography import x509

from app import pki
from app.cluster import check
from app.yaml_source import parse_source
from tests.support.paths import EXAMPLE
from tests.unit.test_generate import files_of, ignition, run_generate

NETWORK = "/etc/systemd/network/00-lan0.network"


def test_example_ntp_servers_are_rendered_as_ntp_lines_on_every_node(tmp_path):
    output = tmp_path / "output"
    config = tmp_path / "cluster.yaml"
    config.write_text(EXAMPLE.read_text().replace("ntp: [10.0.0.1]", "ntp: [10.0.0.1, time.example.com.]"))
    assert run_generate(output, config=config).exit_code == 0
    for node in ("cp-1", "cp-2", "worker-1"):
        lines = files_of(ignition(output, node))[NETWORK].decode().splitlines()
        assert [line for line in lines if line.startswith("NTP=")] == ["NTP=10.0.0.1", "NTP=time.example.com"]


def test_without_ntp_no_ntp_line(tmp_path):
    output = tmp_path / "output"
    config = tmp_path / "cluster.yaml"
    config.write_text(EXAMPLE.read_text().replace("  ntp: [10.0.0.1]", "  ntp: []"))
    assert run_generate(output, config=config).exit_code == 0
    assert "NTP=" not in files_of(ignition(output, "cp-1"))[NETWORK].decode()


def test_a_bad_ntp_server_is_reported_at_its_place():
    text = EXAMPLE.read_text().replace("ntp: [10.0.0.1]", "ntp: [10.0.0.1, 'time server']")
    _, problems = check(parse_source(text, Path("cluster.yaml")), "cluster.yaml")
    (problem,) = [p for p in problems if p.severity == "error"]
    assert problem.path == "network.ntp[1]" and "neither an IPv4 address nor a DNS name" in problem.message
    assert "ntp:" in text.splitlines()[problem.line - 1]


def test_every_certificate_is_valid_from_at_least_a_day_before_now():
    now = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
    secrets = pki.create_secrets(now)
    for pem in (secrets.ca_crt, secrets.front_proxy_ca_crt, secrets.etcd_ca_crt, secrets.admin_crt):
        assert x509.load_pem_x509_certificate(pem).not_valid_before_utc <= now - dt.timedelta(days=1)
    user = pki.user_kubeconfig(secrets, "https://10.0.0.10:6443", "lab", now)
    assert b"client-certificate-data" in user
    crt = base64.b64decode(yaml.safe_load(user)["users"][0]["user"]["client-certificate-data"])
    assert x509.load_pem_x509_certificate(crt).not_valid_before_utc <= now - dt.timedelta(days=1)
