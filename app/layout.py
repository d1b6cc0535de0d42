"""The output tree's shape and the appliance's well-known ports: one description every module uses.

Paths are relative to the output directory (`/output` in the container); `OutputTree` joins them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CREDENTIALS = "credentials"  # 0700: the CA set, keys, tokens, the admin kubeconfig
ADMIN_KUBECONFIG = f"{CREDENTIALS}/admin.kubeconfig"
MATCHBOX = "matchbox"  # a Matchbox data dir: profiles/ groups/ ignition/
TFTP = "tftp"  # iPXE binaries dnsmasq serves
UEFI_LOADERS = "uefi-loaders.json"  # in matchbox/: which iPXE build each UEFI HTTP Boot client gets
UEFI_BUILDS = ("snponly.efi", "ipxe.efi")  # the x86-64 iPXE EFI builds in tftp/, also served at /uefi/
DNSMASQ_CONF = "dnsmasq.conf"
CHRONY_CONF = "chrony.conf"  # written only with bootstrap.time_server: serve then runs chronyd
EVENTS = "events.jsonl"  # the append-only progress log
SERVE_STATE = "serve.json"  # who is serving this directory (teardown reads it)
KUBECONFIG = "kubeconfig"  # the user's, written by wait once the cluster is healthy
RUN = "run"  # runtime files of a serve (derived configs, tool kubeconfigs)

# On the node: where a served config puts its one-install credential (serve adds the file; the
# templates' scripts send it as a Bearer token).
CREDENTIAL_PATH = "/etc/bootstrap-node/credential"

# The assets directory (`/assets` in the image, `--assets`): Flatcar's files per node architecture,
# under <dir>/<flatcar_version>/.
FLATCAR_ASSET_DIR = {"amd64": "flatcar", "arm64": "flatcar-arm64"}
# What a node fetches from there: the PXE kernel and initrd, then flatcar-install's image and signature.
FLATCAR_FILES = ("flatcar_production_pxe.vmlinuz", "flatcar_production_pxe_image.cpio.gz",
                 "flatcar_production_image.bin.bz2", "flatcar_production_image.bin.bz2.sig")

API_PORT = 6443
DEFAULT_HTTP_PORT = 8080
DHCP_PORT, TFTP_PORT, PROXY_DHCP_PORT = 67, 69, 4011


@dataclass(frozen=True)
class OutputTree:
    root: Path

    @property
    def credentials(self) -> Path:
        return self.root / CREDENTIALS

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / ADMIN_KUBECONFIG

    @property
    def matchbox(self) -> Path:
        return self.root / MATCHBOX

    @property
    def tftp(self) -> Path:
        return self.root / TFTP

    @property
    def dnsmasq_conf(self) -> Path:
        return self.root / DNSMASQ_CONF

    @property
    def events(self) -> Path:
        return self.root / EVENTS

    @property
    def serve_state(self) -> Path:
        return self.root / SERVE_STATE

    @property
    def kubeconfig(self) -> Path:
        return self.root / KUBECONFIG

    @property
    def run(self) -> Path:
        return self.root / RUN


def api_url(host: str) -> str:
    return f"https://{host}:{API_PORT}"
