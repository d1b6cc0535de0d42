"""`pivot` and `unpivot` on the command line, where no API server is needed: --dry-run's YAML, and
every refusal before the first call, with its exit code and no traceback."""

from __future__ import annotations

import http.server
import ssl
import threading
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from app.cli import app
from tests.support.bmc import self_signed
from tests.support.paths import EXAMPLE
from tests.unit.test_pivot_state import write_credentials


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    return write_credentials(tmp_path_factory.mktemp("cli") / "output")


def pivot(output: Path, *args: str):
    return CliRunner().invoke(app, ["--config", str(EXAMPLE), "--output", str(output), "--templates", "/nonexistent",
                                    "pivot", *args])


def test_dry_run_prints_every_object_and_needs_no_cluster(output):
    result = pivot(output, "--dry-run", "--namespace", "prov")
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.output) if d]
    assert [d["kind"] for d in docs].count("Machine") == 5
    assert all(d["metadata"].get("namespace") in (None, "prov", "kube-system") for d in docs)
    assert (output / "credentials" / "ca.key").read_text().splitlines()[1] not in result.output


@pytest.mark.parametrize("args, code, says", [
    ([], 1, "pass --kubeconfig"),
    (["--dry-run", "--node-selector", "nokey"], 1, "--node-selector 'nokey': expected key=value"),
    (["--dry-run", "--namespace", "Not_A_Label"], 1, "--namespace 'Not_A_Label'"),
    (["--dry-run", "--namespace", "kube-system"], 1, "a namespace of Kubernetes' own"),
    (["--dry-run", "--namespace", "default"], 1, "a namespace of Kubernetes' own"),
    (["--dry-run", "--image", "Registry/App::1"], 1, "--image 'Registry/App::1': not an image reference"),
    (["--dry-run", "--image", "app@sha256:abc"], 1, "not an image reference"),
    (["--dry-run", "--timeout", "0"], 1, "--timeout 0.0: must be a number of seconds above 0"),
    (["--kubeconfig", "/nonexistent/kubeconfig"], 2, "/nonexistent/kubeconfig: No such file"),
    (["--kubeconfig", "/nonexistent/kubeconfig", "--server", "api:6443"], 1, "--server 'api:6443': expected https://"),
    (["--kubeconfig", "/nonexistent/kubeconfig", "--server", "http://api:6443"], 1, "not over plain http"),
])
def test_refusals_before_any_call(output, tmp_path, args, code, says):
    result = pivot(output, *args)
    assert result.exit_code == code and says in result.output, result.output
    assert "Traceback" not in result.output


def test_a_kubeconfig_without_a_server_is_refused(output, tmp_path):
    (tmp_path / "kubeconfig").write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    result = pivot(output, "--kubeconfig", str(tmp_path / "kubeconfig"))
    assert result.exit_code == 2 and "not a kubeconfig with a current context" in result.output


def test_a_missing_output_dir_is_exit_2(tmp_path):
    result = pivot(tmp_path / "none", "--dry-run")
    assert result.exit_code == 2 and "no such output directory" in result.output


@pytest.mark.parametrize("args, says", [
    (["--pivot-image", "registry.example/x:1"], "need --pivot"),
    (["--pivot", "--pivot-node-selector", "nokey"], "--node-selector 'nokey': expected key=value"),
    (["--pivot", "--pivot-namespace", "Not_A_Label"], "--namespace 'Not_A_Label'"),
    (["--pivot", "--pivot-namespace", "kube-system"], "a namespace of Kubernetes' own"),
    (["--pivot", "--pivot-image", "Not An Image"], "not an image reference"),
])
def test_init_refuses_a_bad_pivot_option_before_anything(tmp_path, args, says):
    result = CliRunner().invoke(app, ["--config", str(EXAMPLE), "--output", str(tmp_path / "out"), "init", "--yes",
                                      *args])
    assert result.exit_code == 1 and says in result.output, result.output
    assert not (tmp_path / "out").exists()  # nothing generated, served or powered


@pytest.mark.parametrize("image", ["bootstrap-node:0.1.0", "registry.example:5000/team/bootstrap-node:v1.2-rc.1",
                                   "localhost/bootstrap-node", "registry.example/bn@sha256:" + "a" * 64])
def test_an_image_reference_is_taken_as_written(output, image):
    result = pivot(output, "--dry-run", "--image", image)
    assert result.exit_code == 0, result.output
    deployment = next(d for d in yaml.safe_load_all(result.output) if d and d["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == image


def test_a_kubeconfig_that_is_not_text_is_refused(output, tmp_path):
    (tmp_path / "kubeconfig").write_bytes(b"\x00\xff\xfe not utf-8")
    result = pivot(output, "--kubeconfig", str(tmp_path / "kubeconfig"))
    assert result.exit_code == 2 and "not a kubeconfig" in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


class Refusing(http.server.BaseHTTPRequestHandler):
    """Something at the kubeconfig's address that answers, but not as an API server that takes these
    credentials: every request is 401."""

    def do_GET(self):  # noqa: N802 (http.server's spelling)
        getattr(self.server, "asked", []).append(self.path)
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"kind":"Status","message":"Unauthorized","code":401}')

    def log_message(self, *args):
        pass


def kubeconfig_for(path: Path, server: str, **cluster) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [{"name": "k", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "u", "user": {"token": "wrong"}}]}))
    return path


@pytest.fixture
def refusing_kubeconfig(tmp_path):
    """https, with a certificate the kubeconfig trusts: plain http is refused before any call."""
    cert_args = self_signed(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_args[1], cert_args[3])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield kubeconfig_for(tmp_path / "kubeconfig", f"https://127.0.0.1:{server.server_port}",
                         **{"certificate-authority": cert_args[1]})
    server.shutdown()
    thread.join()


def test_a_server_that_refuses_the_credentials_is_exit_5_without_a_traceback(output, refusing_kubeconfig, tmp_path):
    result = pivot(output, "--kubeconfig", str(refusing_kubeconfig), "--timeout", "5")
    assert result.exit_code == 5 and "the API server refused: GET /readyz: HTTP 401" in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    back = tmp_path / "back"
    result = CliRunner().invoke(app, ["--output", str(back), "unpivot", "--kubeconfig", str(refusing_kubeconfig),
                                      "--timeout", "5"])
    assert result.exit_code == 5 and "HTTP 401" in result.output, result.output
    assert not back.exists()
    # --server replaces the kubeconfig's address: nothing listens there, so no refusal, no answer.
    result = CliRunner().invoke(app, ["--output", str(back), "unpivot", "--kubeconfig", str(refusing_kubeconfig),
                                      "--timeout", "1", "--server", "https://127.0.0.1:1"])
    assert result.exit_code == 3 and "did not answer" in result.output, result.output


@pytest.mark.parametrize("command", ["pivot", "unpivot"])
@pytest.mark.parametrize("scheme, cluster", [("http", {}), ("https", {"insecure-skip-tls-verify": True})])
def test_a_kubeconfig_whose_server_is_not_verified_is_refused_before_any_call(output, tmp_path, command, scheme,
                                                                              cluster):
    # Something listens there and answers anything: a refusal that waited for an answer would not be exit 1.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    server.asked = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config = kubeconfig_for(tmp_path / "kubeconfig", f"{scheme}://127.0.0.1:{server.server_port}", **cluster)
        back = tmp_path / "back"
        result = CliRunner().invoke(app, ["--config", str(EXAMPLE), "--output", str(output if command == "pivot"
                                                                                    else back),
                                          command, "--kubeconfig", str(config), "--timeout", "5"])
    finally:
        server.shutdown()
        thread.join()
    assert result.exit_code == 1, result.output
    if scheme == "http":
        assert f"{config}: its cluster's server 'http://127.0.0.1:{server.server_port}': expected https://" \
            in result.output and "not over plain http" in result.output, result.output
    else:
        assert f"{config}: its cluster sets insecure-skip-tls-verify" in result.output, result.output
    assert not back.exists()
    assert server.asked == []


@pytest.mark.parametrize("args, code, says", [
    (["--namespace", "kube-system"], 1, "a namespace of Kubernetes' own"),
    (["--namespace", "Not_A_Label"], 1, "a namespace is a DNS label"),
    (["--timeout", "-1"], 1, "--timeout -1.0: must be"),
    (["--server", "http://api:6443"], 1, "not over plain http"),
])
def test_unpivot_refuses_a_bad_option_before_any_call(tmp_path, args, code, says):
    # The kubeconfig does not exist: a refusal that came from the API side would name it instead.
    result = CliRunner().invoke(app, ["--output", str(tmp_path / "back"), "unpivot", "--kubeconfig",
                                      str(tmp_path / "absent"), *args])
    assert result.exit_code == code and says in result.output, result.output
    assert not (tmp_path / "back").exists()


def test_unpivot_refuses_a_non_empty_output_before_any_call(tmp_path):
    (tmp_path / "back").mkdir()
    (tmp_path / "back" / "cluster.yaml").write_text("kept\n")
    result = CliRunner().invoke(app, ["--output", str(tmp_path / "back"), "unpivot", "--kubeconfig",
                                      str(tmp_path / "absent")])
    assert result.exit_code == 2 and "exists and is not empty" in result.output, result.output
    assert (tmp_path / "back" / "cluster.yaml").read_text() == "kept\n"
