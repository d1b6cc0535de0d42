"""`bootstrap-node validate` and `schema` as a user runs them: exit codes and output formats."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading

import dns.message
import dns.rrset
import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from app.cli import app
from app.cluster.schema import cluster_schema
from tests.support.paths import EXAMPLE, REPO
from tests.support.yaml_bombs import BOMBS, at, names_the_problem

runner = CliRunner()


def run(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env)


@pytest.fixture
def bad_config(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(EXAMPLE.read_text().replace("http_port: 8080", "http_port: 0")
                    .replace("name: lab ", "name: Lab "))
    return path


def test_valid_example_exits_0():
    result = run("validate", "--config", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    assert "valid (cluster lab: 3 controller(s), 2 worker(s)" in result.output


def test_config_from_environment_variable():
    result = run("validate", env={"BOOTSTRAP_CONFIG": str(EXAMPLE)})
    assert result.exit_code == 0, result.output


def test_invalid_exits_1_with_text_lines(bad_config):
    result = run("--config", str(bad_config), "validate")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert any(line.startswith(f"{bad_config}:8:9: cluster.name: 'Lab'") for line in lines), lines
    assert any(": bootstrap.http_port: 0 is outside the port range" in line for line in lines), lines


def test_json_format(bad_config):
    result = run("validate", "--config", str(bad_config), "--format", "json")
    assert result.exit_code == 1
    items = json.loads(result.output)
    assert {tuple(sorted(i)) for i in items} == {("column", "file", "line", "message", "path", "severity")}
    assert {i["path"] for i in items} == {"cluster.name", "bootstrap.http_port"}


def test_github_format(bad_config):
    result = run("validate", "--config", str(bad_config), "--format", "github")
    assert result.exit_code == 1
    assert f"::error file={bad_config},line=8,col=9::cluster.name: 'Lab'" in result.output


def test_unreadable_exits_2(tmp_path):
    missing = run("validate", "--config", str(tmp_path / "none.yaml"))
    assert missing.exit_code == 2 and "file not found" in missing.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("cluster:\n  name: [lab\n")
    result = run("validate", "--config", str(broken), "--format", "json")
    assert result.exit_code == 2
    [item] = json.loads(result.output)
    assert item["line"] == 3 and "YAML syntax error" in item["message"]


def test_strict_turns_warnings_into_failure(tmp_path):
    path = tmp_path / "c.yaml"
    text = EXAMPLE.read_text()
    for name in ["cp-2", "cp-3"]:
        text = text.replace(f"name: {name}, role: controller", f"name: {name}, role: worker")
    path.write_text(text)
    assert run("validate", "--config", str(path)).exit_code == 0
    strict = run("validate", "--config", str(path), "--strict")
    assert strict.exit_code == 1 and "warning: nodes[0].role: only one controller" in strict.output


def test_console_entry_point_runs_as_module():
    result = subprocess.run([sys.executable, "-m", "app", "validate", "--config", str(EXAMPLE)],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_schema_command_matches_committed_copy():
    result = run("schema")
    assert result.exit_code == 0
    committed = json.loads((REPO / "cluster.schema.json").read_text())
    assert json.loads(result.output) == committed, "cluster.schema.json is stale: run `make schema`"


def test_schema_accepts_example_and_rejects_unknown_keys():
    validator = jsonschema.Draft202012Validator(cluster_schema())
    data = yaml.safe_load(EXAMPLE.read_text())
    assert list(validator.iter_errors(data)) == []
    data["bootstrap"]["http_prot"] = 1
    assert any("http_prot" in e.message for e in validator.iter_errors(data))


def test_example_starts_with_schema_modeline():
    assert EXAMPLE.read_text().splitlines()[0] == "# yaml-language-server: $schema=./cluster.schema.json"


class TinyDNS:
    """A real DNS server on loopback answering A queries from a table (dnspython wire format)."""

    def __init__(self, records: dict[str, list[str]]):
        import socket
        self.records = records
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            name = query.question[0].name.to_text().rstrip(".")
            if name in self.records:
                reply.answer.append(dns.rrset.from_text_list(name + ".", 60, "IN", "A", self.records[name]))
            else:
                reply.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(reply.to_wire(), peer)

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("records,code,fragment", [
    ({"api.lab.example.com": ["10.0.0.10"]}, 0, None),
    ({"api.lab.example.com": ["10.0.0.99"]}, 1, "resolves to 10.0.0.99, not to 10.0.0.10"),
    ({}, 1, "does not exist in DNS"),
])
def test_online_checks_api_server_name(records, code, fragment):
    server = TinyDNS(records)
    try:
        result = run("validate", "--config", str(EXAMPLE), "--online", "--nameserver", f"127.0.0.1:{server.port}")
    finally:
        server.close()
    assert result.exit_code == code, result.output
    if fragment:
        assert "cluster.api_server_name: " in result.output and fragment in result.output


@pytest.mark.parametrize("name", list(BOMBS))
def test_hostile_input_gets_a_message_with_its_place_not_a_traceback(tmp_path, name):
    text, code, fragment, pos = BOMBS[name]
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    result = run("validate", "--config", str(path))
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit)  # typer's exit, not an error escaping
    [line] = result.output.splitlines()
    place = re.match(rf"{re.escape(str(path))}:(?:(\d+):(\d+):)? ", line)
    assert place, line
    assert at(pos, *(int(n) if n else None for n in place.groups()), line) and names_the_problem(fragment, line), line
