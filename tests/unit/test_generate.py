"""`generate` on cluster.yaml.example: what each node receives, the PKI, atomicity and idempotence."""

from __future__ import annotations

import base64
import gzip
import json
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from app import pki
from app.cli import app
from tests.support.paths import EXAMPLE, REPO, shared_path

runner = CliRunner()
NODES = ["cp-1", "cp-2", "cp-3", "worker-1", "worker-2"]
CA_SET = ["pki/ca.crt", "pki/ca.key", "pki/sa.key", "pki/sa.pub", "pki/front-proxy-ca.crt",
          "pki/front-proxy-ca.key", "pki/etcd/ca.crt", "pki/etcd/ca.key"]


def run_generate(output: Path, *extra: str, config: Path = EXAMPLE, templates: str = "/nonexistent"):
    return runner.invoke(app, ["--config", str(config), "--output", str(output), "--templates", templates,
                               "generate", "--assets", str(output.parent / "no-assets"), *extra])


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("gen") / "output"
    result = run_generate(output)
    assert result.exit_code == 0, result.output
    return output


def ignition(out: Path, name: str) -> dict:
    return json.loads((out / "matchbox" / "ignition" / f"{name}.ign").read_text())


def decode(resource: dict) -> bytes:
    header, payload = resource["source"][len("data:"):].split(",", 1)
    raw = base64.b64decode(payload) if header.endswith(";base64") else urllib.parse.unquote_to_bytes(payload)
    return gzip.decompress(raw) if resource.get("compression") == "gzip" else raw


def files_of(config: dict) -> dict[str, bytes]:
    return {f["path"]: decode(f["contents"]) for f in config["storage"].get("files", [])
            if f.get("contents", {}).get("source", "").startswith("data:")}


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode & 0o7777, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_every_ignition_validates_against_the_official_schema(out):
    schema = json.loads(shared_path("schemas", "ignition", "ignition-3.4.0.schema.json").read_text())
    validator = jsonschema.Draft4Validator(schema)
    configs = sorted((out / "matchbox" / "ignition").glob("*.ign"))
    assert len(configs) == 2 * len(NODES)
    for path in configs:
        config = json.loads(path.read_text())
        assert config["ignition"]["version"] == "3.4.0"
        assert list(validator.iter_errors(config)) == [], path.name


def test_generate_checks_schemas_itself_when_given_them(tmp_path):
    schemas = shared_path("schemas", "ignition")
    result = run_generate(tmp_path / "o", "--ignition-schemas", str(schemas))
    assert result.exit_code == 0, result.output
    broken = tmp_path / "schemas"
    shutil.copytree(schemas, broken)
    doc = json.loads((broken / "ignition-3.4.0.schema.json").read_text())
    doc["definitions"]["ignition"]["properties"]["version"]["pattern"] = "^9"  # a schema nothing passes
    (broken / "ignition-3.4.0.schema.json").write_text(json.dumps(doc))
    result = run_generate(tmp_path / "o2", "--ignition-schemas", str(broken))
    assert result.exit_code == 1 and "invalid Ignition" in result.output
    assert not (tmp_path / "o2" / "matchbox").exists()


@pytest.mark.parametrize("name,ip,mac", [("cp-1", "10.0.0.11", "52:54:00:00:00:11"),
                                         ("worker-2", "10.0.0.22", "52:54:00:00:00:22")])
def test_hostname_and_static_address(out, name, ip, mac):
    files = files_of(ignition(out, name))
    assert files["/etc/hostname"] == name.encode()
    network = files["/etc/systemd/network/00-lan0.network"].decode()
    assert f"MACAddress={mac}" in network and f"Address={ip}/24" in network and "Gateway=10.0.0.1" in network


def test_join_pins_the_ca_computed_from_credentials_and_openssl_agrees(out):
    ca = out / "credentials" / "ca.crt"
    pubkey = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", str(ca)], check=True,
                            capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pubkey, check=True,
                         capture_output=True).stdout
    import hashlib
    expected = "sha256:" + hashlib.sha256(der).hexdigest()
    assert pki.ca_pin(ca.read_bytes()) == expected
    for name in NODES[1:]:
        docs = list(yaml.safe_load_all(files_of(ignition(out, name))["/etc/kubernetes/kubeadm.yaml"]))
        join = next(d for d in docs if d["kind"] == "JoinConfiguration")
        assert join["discovery"]["bootstrapToken"]["caCertHashes"] == [expected]
        assert "unsafeSkipCAVerification" not in json.dumps(join)
        assert ("controlPlane" in join) == name.startswith("cp-")
    init = list(yaml.safe_load_all(files_of(ignition(out, "cp-1"))["/etc/kubernetes/kubeadm.yaml"]))
    assert [d["kind"] for d in init] == ["InitConfiguration", "ClusterConfiguration"]
    assert init[0]["bootstrapTokens"][0]["token"] == (out / "credentials" / "bootstrap-token").read_text().strip()
    assert init[1]["controlPlaneEndpoint"] == "10.0.0.10:6443"
    assert "api.lab.example.com" in init[1]["apiServer"]["certSANs"]


def test_only_the_first_controller_carries_ca_keys(out):
    """Least secret per node: cp-1 gets the CA set; cp-2/cp-3 join with kubeadm's certificate key
    (kubeadm-certs); workers get a token and the CA pin only."""
    creds = out / "credentials"
    private = [(creds / name).read_text().strip() for name in ("ca.key", "sa.key", "front-proxy-ca.key",
                                                               "etcd/ca.key")]
    certificate_key = (creds / "certificate-key").read_text().strip()
    for name in ["cp-2", "cp-3", "worker-1", "worker-2"]:
        text = json.dumps(ignition(out, name))
        files = files_of(ignition(out, name))
        assert not any(key.splitlines()[1] in text for key in private), name
        assert not any(path.startswith("/opt/bootstrap-node/kubernetes/pki") for path in files), name
        join = next(d for d in yaml.safe_load_all(files["/etc/kubernetes/kubeadm.yaml"]) if d)
        if name.startswith("cp-"):
            assert join["controlPlane"]["certificateKey"] == certificate_key
        else:
            assert certificate_key not in text
    files = files_of(ignition(out, "cp-1"))
    ca_set = {p: files[f"/opt/bootstrap-node/kubernetes/{p}"] for p in CA_SET}
    assert ca_set["pki/ca.crt"] == (creds / "ca.crt").read_bytes()
    assert ca_set["pki/etcd/ca.key"] == (creds / "etcd" / "ca.key").read_bytes()
    init = next(d for d in yaml.safe_load_all(files["/etc/kubernetes/kubeadm.yaml"]) if d)
    assert init["certificateKey"] == certificate_key and init["bootstrapTokens"][0]["ttl"] == "2h0m0s"
    assert "kubeadm init --upload-certs --config" in files["/opt/bootstrap-node/kubeadm.sh"].decode()


def test_nodes_forget_bootstrap_secrets_after_kubeadm(out):
    script = files_of(ignition(out, "cp-2"))["/opt/bootstrap-node/kubeadm.sh"].decode()
    success = script[script.index("2>&1); then"):script.index("report failed")]
    assert success.index("forget_bootstrap_secrets") < success.index("report joined")
    forget = script[script.index("forget_bootstrap_secrets() {"):script.index("# kubeadm reset")]
    for path in ("/opt/bootstrap-node/kubernetes", "/etc/kubernetes/kubeadm.yaml", "/oem", "config.ign"):
        assert path in forget
    assert 'Authorization: Bearer $(cat /etc/bootstrap-node/credential' in script


def test_kube_vip_carries_the_vip_and_super_admin_only_on_the_bootstrap_node(out):
    for name, conf in [("cp-1", "super-admin.conf"), ("cp-2", "admin.conf")]:
        manifest = yaml.safe_load(files_of(ignition(out, name))["/opt/bootstrap-node/kubernetes/manifests/kube-vip.yaml"])
        env = {e["name"]: e.get("value") for e in manifest["spec"]["containers"][0]["env"]}
        assert env["address"] == "10.0.0.10" and env["vip_interface"] == "lan0"
        assert manifest["spec"]["volumes"][0]["hostPath"]["path"] == f"/etc/kubernetes/{conf}"


def test_install_stage_points_at_the_appliance(out):
    script = files_of(ignition(out, "worker-1-install"))["/opt/bootstrap-node/install.sh"].decode()
    line = next(l for l in script.splitlines() if l.strip().startswith("flatcar-install"))
    assert line.split()[:-1] == ["flatcar-install", "-d", "/dev/disk/by-id/nvme-eui.0025385b71b2c321", "-b", "http://10.0.0.2:8080/assets/flatcar",
                            "-V", "4593.2.5", "-i", "/tmp/final.ign"]
    assert "http://10.0.0.2:8080/ignition?mac=52:54:00:00:00:21&os=installed" in script
    assert '"phase\\":\\"$1\\"' in script and "report installed" in script
    profile = json.loads((out / "matchbox" / "profiles" / "worker-1-install.json").read_text())
    assert profile["boot"]["kernel"] == "/assets/flatcar/4593.2.5/flatcar_production_pxe.vmlinuz"
    assert "initrd=flatcar_production_pxe_image.cpio.gz" in profile["boot"]["args"]
    assert "ignition.config.url=http://10.0.0.2:8080/ignition?mac=${mac:hexhyp}" in profile["boot"]["args"]


def test_groups_select_by_mac_then_mac_and_os(out):
    install = json.loads((out / "matchbox" / "groups" / "cp-2-install.json").read_text())
    final = json.loads((out / "matchbox" / "groups" / "cp-2.json").read_text())
    assert install["selector"] == {"mac": "52:54:00:00:00:12"} and install["profile"] == "cp-2-install"
    assert final["selector"] == {"mac": "52:54:00:00:00:12", "os": "installed"} and final["profile"] == "cp-2"


def test_dnsmasq_conf_is_proxy_dhcp_for_every_firmware(out):
    conf = (out / "dnsmasq.conf").read_text()
    assert "dhcp-range=10.0.0.0,proxy,255.255.255.0" in conf and "interface=eth0" in conf
    assert f"tftp-root={out.resolve() / 'tftp'}" in conf
    for arch, file in [("x86PC", "undionly.kpxe"), ("X86-64_EFI", "snponly.efi"), ("ARM64_EFI", "snp-arm64.efi")]:
        assert re.search(rf"^pxe-service=tag:!ipxe,{arch},.*,{re.escape(file)}$", conf, re.M)
        assert f"pxe-service=tag:ipxe,{arch},\"iPXE\",http://10.0.0.2:8080/boot.ipxe" in conf
    assert "dhcp-userclass=set:ipxe,iPXE" in conf


def test_dnsmasq_serves_a_rack_booting_at_once_over_tftp(out):
    """dnsmasq's default of 50 concurrent TFTP transfers failed 699 of 1,000 machines in the boot storm
    (bench/storm.py); the generated conf lifts it."""
    found = re.search(r"^tftp-max=(\d+)$", (out / "dnsmasq.conf").read_text(), re.M)
    assert found and int(found[1]) >= 1000


def test_credentials_modes(out):
    assert (out / "credentials").stat().st_mode & 0o777 == 0o700
    for name in ["ca.key", "sa.key", "etcd/ca.key", "bootstrap-token", "certificate-key", "admin.kubeconfig"]:
        assert (out / "credentials" / name).stat().st_mode & 0o777 == 0o600, name
    assert (out / "matchbox" / "ignition" / "cp-1.ign").stat().st_mode & 0o777 == 0o600


def test_output_is_private_whatever_the_umask(tmp_path):
    """Issue #33, item 8: under umask 000 the output directory came out 0777. Now it is 0711 (dnsmasq,
    running as nobody, passes through it to tftp/) and nothing in the tree is writable by others."""
    import os
    old = os.umask(0)
    try:
        result = run_generate(tmp_path / "new" / "output")
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    out = tmp_path / "new" / "output"
    assert out.stat().st_mode & 0o777 == 0o711
    writable = [str(p) for p in out.rglob("*") if not p.is_symlink() and p.stat().st_mode & 0o022]
    assert writable == []
    assert (out / "credentials").stat().st_mode & 0o777 == 0o700


def test_admin_kubeconfig_trusts_the_ca_and_points_at_the_api_name(out):
    kc = yaml.safe_load((out / "credentials" / "admin.kubeconfig").read_text())
    cluster = kc["clusters"][0]["cluster"]
    assert cluster["server"] == "https://api.lab.example.com:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == (out / "credentials" / "ca.crt").read_bytes()
    cert = base64.b64decode(kc["users"][0]["user"]["client-certificate-data"])
    (out.parent / "admin.pem").write_bytes(cert)
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(out / "credentials" / "ca.crt"),
                             str(out.parent / "admin.pem")], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-in", str(out.parent / "admin.pem")],
                             capture_output=True, text=True).stdout
    assert "O = system:masters" in subject


def test_second_generate_changes_no_byte(out):
    before = snapshot(out)
    result = run_generate(out)
    assert result.exit_code == 0 and "0 written" in result.output
    assert snapshot(out) == before


def test_bad_template_is_reported_and_old_tree_untouched(out, tmp_path):
    templates = tmp_path / "templates" / "ignition"
    templates.mkdir(parents=True)
    (templates / "worker.yaml.tmpl").write_text("variant: flatcar\nversion: 1.1.0\n{{ NO_SUCH_VARIABLE }}\n")
    before = snapshot(out)
    result = run_generate(out, templates=str(tmp_path / "templates"))
    assert result.exit_code == 1
    assert f"{templates / 'worker.yaml.tmpl'}:3: UndefinedError: 'NO_SUCH_VARIABLE' is undefined" in result.output
    assert "left unchanged" in result.output
    assert snapshot(out) == before


def test_template_override_is_file_by_file(out, tmp_path):
    templates = tmp_path / "templates" / "profiles"
    templates.mkdir(parents=True)
    (templates / "final.json.tmpl").write_text('{"id": {{ PROFILE_ID | tojson }}, "name": "custom", '
                                               '"ignition_id": {{ IGNITION_ID | tojson }}}')
    copy = tmp_path / "output"
    shutil.copytree(out, copy)
    result = run_generate(copy, templates=str(tmp_path / "templates"))
    assert result.exit_code == 0, result.output
    assert json.loads((copy / "matchbox/profiles/cp-1.json").read_text())["name"] == "custom"
    assert (copy / "matchbox/profiles/cp-1-install.json").read_bytes() == \
        (out / "matchbox/profiles/cp-1-install.json").read_bytes()


def test_butane_error_in_template_names_file_and_rendered_line(tmp_path):
    templates = tmp_path / "templates" / "ignition"
    templates.mkdir(parents=True)
    (templates / "install.yaml.tmpl").write_text("variant: flatcar\nversion: 1.1.0\nstorage:\n  files:\n"
                                                 "    - path: etc/{{ NODE_NAME }}\n")
    result = run_generate(tmp_path / "o", templates=str(tmp_path / "templates"))
    assert result.exit_code == 1
    assert f"{templates / 'install.yaml.tmpl'} rendered for node cp-1 is not valid Butane" in result.output
    assert "error at $.storage.files.0.path, line 5 col 13: path not absolute" in result.output
    assert "rendered line 5: - path: etc/cp-1" in result.output


def test_secrets_are_reused_and_rotated_only_on_request(out, tmp_path):
    copy = tmp_path / "output"
    shutil.copytree(out, copy)
    ca = (copy / "credentials" / "ca.crt").read_bytes()
    assert run_generate(copy).exit_code == 0 and (copy / "credentials" / "ca.crt").read_bytes() == ca
    result = run_generate(copy, "--rotate-secrets")
    assert result.exit_code == 0 and "created new secrets" in result.output
    assert (copy / "credentials" / "ca.crt").read_bytes() != ca


def test_partial_credentials_are_an_error_not_a_new_ca(out, tmp_path):
    copy = tmp_path / "output"
    shutil.copytree(out, copy)
    (copy / "credentials" / "ca.key").unlink()
    before = snapshot(copy)
    result = run_generate(copy)
    assert result.exit_code == 1 and "missing ca.key" in result.output
    assert snapshot(copy) == before


def test_token_from_cluster_yaml_wins(tmp_path):
    config = tmp_path / "cluster.yaml"
    config.write_text(EXAMPLE.read_text().replace("# kubeadm_token: abcdef.0123456789abcdef",
                                                  "kubeadm_token: abcdef.0123456789abcdef"))
    result = run_generate(tmp_path / "o", config=config)
    assert result.exit_code == 0, result.output
    assert "abcdef.0123456789abcdef" in files_of(ignition(tmp_path / "o", "cp-2"))["/etc/kubernetes/kubeadm.yaml"].decode()


def test_removed_node_files_are_removed(out, tmp_path):
    copy = tmp_path / "output"
    shutil.copytree(out, copy)
    config = tmp_path / "cluster.yaml"
    config.write_text("\n".join(l for l in EXAMPLE.read_text().splitlines() if "worker-2" not in l) + "\n")
    result = run_generate(copy, config=config)
    assert result.exit_code == 0 and "6 removed" in result.output
    assert not (copy / "matchbox/ignition/worker-2.ign").exists()
    assert (copy / "matchbox/ignition/worker-1.ign").exists()


def test_single_controller_cluster_has_no_taints_and_no_vip(tmp_path):
    text = EXAMPLE.read_text().replace("control_plane_vip: 10.0.0.10", "")
    text = "\n".join(l for l in text.splitlines() if "role: worker" not in l and "cp-2" not in l and "cp-3" not in l)
    config = tmp_path / "cluster.yaml"
    config.write_text(text + "\n")
    result = run_generate(tmp_path / "o", config=config)
    assert result.exit_code == 0, result.output
    files = files_of(ignition(tmp_path / "o", "cp-1"))
    init = list(yaml.safe_load_all(files["/etc/kubernetes/kubeadm.yaml"]))
    assert init[0]["nodeRegistration"]["taints"] == [] and init[1]["controlPlaneEndpoint"] == "10.0.0.11:6443"
    assert "/opt/bootstrap-node/kubernetes/manifests/kube-vip.yaml" not in files


def test_ipxe_binaries_are_copied_with_the_bios_dot_zero_name(tmp_path):
    ipxe = tmp_path / "ipxe"
    ipxe.mkdir()
    (ipxe / "undionly.kpxe").write_bytes(b"bios")
    (ipxe / "snponly.efi").write_bytes(b"uefi")
    result = run_generate(tmp_path / "o", "--ipxe-dir", str(ipxe))
    assert result.exit_code == 0
    tftp = tmp_path / "o" / "tftp"
    assert (tftp / "undionly.kpxe.0").read_bytes() == b"bios" and (tftp / "snponly.efi").read_bytes() == b"uefi"
    assert "cannot chain to iPXE" not in result.output  # every x86 binary is there; no arm64 node needs one
    assert not (tftp / "snp-arm64.efi").exists()


def test_sysext_hash_is_added_when_the_asset_exists(tmp_path):
    assets = tmp_path / "no-assets" / "sysext"
    assets.mkdir(parents=True)
    (assets / "kubernetes-v1.36.3-x86-64.raw").write_bytes(b"sysext image")
    result = run_generate(tmp_path / "o")
    assert result.exit_code == 0
    import hashlib
    config = ignition(tmp_path / "o", "worker-1")
    entry = next(f for f in config["storage"]["files"] if f["path"].endswith(".raw"))
    assert entry["contents"]["verification"]["hash"] == "sha512-" + hashlib.sha512(b"sysext image").hexdigest()
    assert entry["contents"]["source"] == "http://10.0.0.2:8080/assets/sysext/kubernetes-v1.36.3-x86-64.raw"


def test_controller_only_cluster_untaints_every_controller(tmp_path):
    config = tmp_path / "cluster.yaml"
    config.write_text("\n".join(l for l in EXAMPLE.read_text().splitlines() if "role: worker" not in l) + "\n")
    assert run_generate(tmp_path / "o", config=config).exit_code == 0
    for name in ["cp-1", "cp-2", "cp-3"]:
        docs = list(yaml.safe_load_all(files_of(ignition(tmp_path / "o", name))["/etc/kubernetes/kubeadm.yaml"]))
        assert docs[0]["nodeRegistration"]["taints"] == [], name


def test_cilium_kube_proxy_replacement_skips_kube_proxy(out, tmp_path):
    config = tmp_path / "cluster.yaml"
    config.write_text(EXAMPLE.read_text().replace("cni: flannel", "cni: cilium\ncilium: {kube_proxy_replacement: true}"))
    assert run_generate(tmp_path / "o", config=config).exit_code == 0
    init = list(yaml.safe_load_all(files_of(ignition(tmp_path / "o", "cp-1"))["/etc/kubernetes/kubeadm.yaml"]))
    assert init[0]["skipPhases"] == ["addon/kube-proxy"]
    flannel = list(yaml.safe_load_all(files_of(ignition(out, "cp-1"))["/etc/kubernetes/kubeadm.yaml"]))
    assert "skipPhases" not in flannel[0]


@pytest.mark.parametrize("name", NODES)
def test_containerd_pulls_through_the_appliance_then_upstream(out, name):
    import tomllib

    from app.render.images import MIRRORED_REGISTRIES, UPSTREAM
    files = files_of(ignition(out, name))
    config = tomllib.loads(files["/etc/containerd/config.toml"].decode())
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.10.2"  # kubeadm's, for v1.36.3
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    hosts = {path.split("/")[4]: tomllib.loads(data.decode()) for path, data in files.items()
             if path.startswith("/etc/containerd/certs.d/")}
    assert sorted(hosts) == sorted(MIRRORED_REGISTRIES)
    for registry, toml in hosts.items():
        assert toml["server"] == UPSTREAM.get(registry, f"https://{registry}")
        assert toml["host"] == {"http://10.0.0.2:8080": {"capabilities": ["pull", "resolve"]}}


# `generate` forks its render workers only in a process with no other thread (a fork copies no thread
# but every lock): pytest's process may have threads left by other tests, so this runs in a fresh one.
FORKED_GENERATE = """
import sys
from app.render import tree
pools = []
class Counted(tree.ProcessPoolExecutor):
    def __init__(self, *args, **kwargs):
        pools.append(args)
        super().__init__(*args, **kwargs)
tree.PARALLEL_FROM, tree.ProcessPoolExecutor = 2, Counted
tree.os.cpu_count = lambda: 2
from app.cli import app
try:
    app(sys.argv[1:])
finally:
    print(f"pools={len(pools)}", file=sys.stderr)
"""


def forked_generate(output: Path, templates: str = "/nonexistent") -> tuple[int, str, int]:
    """generate in a fresh process with forked render workers from 2 nodes on: (exit code, its output,
    how many worker pools it made)."""
    run = subprocess.run([sys.executable, "-c", FORKED_GENERATE, "--config", str(EXAMPLE), "--output", str(output),
                          "--templates", templates, "generate", "--assets", str(output.parent / "no-assets")],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    pools = int(re.findall(r"^pools=(\d+)$", run.stderr, flags=re.M)[-1])
    return run.returncode, run.stdout + run.stderr, pools


def test_nodes_rendered_by_forked_workers_give_the_same_bytes_and_the_first_error(out, tmp_path):
    copy = tmp_path / "output"
    assert run_generate(copy).exit_code == 0  # in one process: the example has fewer than PARALLEL_FROM nodes
    before = snapshot(copy)
    code, output, pools = forked_generate(copy)
    assert code == 0, output
    assert pools == 1 and snapshot(copy) == before  # not a byte changed, no file rewritten
    templates = tmp_path / "templates" / "ignition"
    templates.mkdir(parents=True)
    (templates / "install.yaml.tmpl").write_text(
        "variant: flatcar\nversion: 1.1.0\nstorage:\n  files:\n"
        "    - path: {% if NODE_NAME in ('cp-2', 'worker-2') %}etc/{% else %}/etc/{% endif %}{{ NODE_NAME }}\n")
    code, output, pools = forked_generate(tmp_path / "o", templates=str(tmp_path / "templates"))
    assert code == 1 and pools == 1
    assert "rendered for node cp-2 is not valid Butane" in output and "worker-2" not in output
