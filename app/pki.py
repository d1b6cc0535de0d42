"""The cluster's PKI and secrets, owned by the appliance.

`create_secrets` is the only place randomness and the clock enter: it runs once (or on
`--rotate-secrets`) and its result is persisted under credentials/. Everything else here is a pure
function of those secrets: the CA pin, the admin kubeconfig.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets as random
import string
from dataclasses import dataclass, fields, replace

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

CA_YEARS = 10
ADMIN_YEARS = 1
ADMIN_USER = "bootstrap-node-admin"
ADMIN_GROUP = "system:masters"  # as kubeadm's super-admin.conf: the 1.29+ admin group is bound too late for us
# The user's kubeconfig group: kubeadm (1.29+) binds it to cluster-admin with a ClusterRoleBinding,
# so access is revoked by deleting that binding. system:masters cannot be revoked without a new CA.
CLUSTER_ADMINS = "kubeadm:cluster-admins"
USER_NAME = "bootstrap-node-user"
# Certificates are valid from a day before the appliance's clock: a node whose clock runs behind (no
# NTP yet, a flat RTC battery, a timezone set as UTC) would otherwise see them as not yet valid, and
# every TLS handshake with the API would fail until its clock caught up.
BACKDATE = dt.timedelta(days=1)


@dataclass(frozen=True)
class Secrets:
    """PEM bytes and tokens; field names map to files under credentials/ (see FILES)."""

    ca_crt: bytes
    ca_key: bytes
    sa_key: bytes
    sa_pub: bytes
    front_proxy_ca_crt: bytes
    front_proxy_ca_key: bytes
    etcd_ca_crt: bytes
    etcd_ca_key: bytes
    admin_crt: bytes
    admin_key: bytes
    bootstrap_token: str
    certificate_key: str

    def with_token(self, token: str | None) -> Secrets:
        """cluster.yaml's `kubeadm_token`, when set, wins over the generated one."""
        return replace(self, bootstrap_token=token) if token else self


# credentials/<file> for every Secrets field; all are 0600 except the public certificates.
FILES = {
    "ca_crt": "ca.crt", "ca_key": "ca.key", "sa_key": "sa.key", "sa_pub": "sa.pub",
    "front_proxy_ca_crt": "front-proxy-ca.crt", "front_proxy_ca_key": "front-proxy-ca.key",
    "etcd_ca_crt": "etcd/ca.crt", "etcd_ca_key": "etcd/ca.key",
    "admin_crt": "admin.crt", "admin_key": "admin.key",
    "bootstrap_token": "bootstrap-token", "certificate_key": "certificate-key",
}
PUBLIC = {"ca_crt", "sa_pub", "front_proxy_ca_crt", "etcd_ca_crt", "admin_crt"}


def to_files(secrets: Secrets) -> dict[str, tuple[bytes, int]]:
    out = {}
    for f in fields(Secrets):
        value = getattr(secrets, f.name)
        data = value if isinstance(value, bytes) else (value + "\n").encode()
        out[FILES[f.name]] = (data, 0o644 if f.name in PUBLIC else 0o600)
    return out


def from_files(read) -> Secrets:
    """`read(relative_name) -> bytes` for each file; raises KeyError naming a missing one."""
    values = {}
    for f in fields(Secrets):
        data = read(FILES[f.name])
        values[f.name] = data if f.type == "bytes" else data.decode().strip()
    return Secrets(**values)


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []
    return x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _builder(subject: x509.Name, issuer: x509.Name, public_key, now: dt.datetime, years: int, ca: bool):
    """What every certificate here shares: serial, validity (from BACKDATE before now), basic
    constraints and key usage."""
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + dt.timedelta(days=365 * years))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=ca,
                                         content_commitment=False, data_encipherment=False, key_agreement=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True))


def _ca(cn: str, now: dt.datetime) -> tuple[bytes, bytes, rsa.RSAPrivateKey]:
    key = _rsa()
    cert = (_builder(_name(cn), _name(cn), key.public_key(), now, CA_YEARS, ca=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key), key


def _client_cert(ca_pem: bytes, ca_key, cn: str, org: str, now: dt.datetime) -> tuple[bytes, bytes]:
    ca = x509.load_pem_x509_certificate(ca_pem)
    key = _rsa()
    cert = (_builder(_name(cn, org), ca.subject, key.public_key(), now, ADMIN_YEARS, ca=False)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def new_token() -> str:
    alphabet = string.ascii_lowercase + string.digits
    pick = lambda n: "".join(random.choice(alphabet) for _ in range(n))  # noqa: E731
    return f"{pick(6)}.{pick(16)}"


def new_certificate_key() -> str:
    """kubeadm's certificate key: 32 random bytes, hex (AES-256-GCM over the kubeadm-certs Secret)."""
    return random.token_hex(32)


def create_secrets(now: dt.datetime) -> Secrets:
    """A fresh CA set, service-account pair, admin client certificate and tokens."""
    ca_crt, ca_key, ca_obj = _ca("kubernetes", now)
    fp_crt, fp_key, _ = _ca("front-proxy-ca", now)
    etcd_crt, etcd_key, _ = _ca("etcd-ca", now)
    sa = _rsa()
    sa_pub = sa.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    admin_crt, admin_key = _client_cert(ca_crt, ca_obj, ADMIN_USER, ADMIN_GROUP, now)
    return Secrets(ca_crt, ca_key, _pem_key(sa), sa_pub, fp_crt, fp_key, etcd_crt, etcd_key,
                   admin_crt, admin_key, new_token(), new_certificate_key())


def admin_client(ca_crt: bytes, ca_key: bytes, now: dt.datetime) -> tuple[bytes, bytes]:
    """A new admin client certificate and key from the CA, as `create_secrets` makes them (`unpivot`:
    the cluster never holds one)."""
    key = serialization.load_pem_private_key(ca_key, password=None)
    return _client_cert(ca_crt, key, ADMIN_USER, ADMIN_GROUP, now)


def ca_pin(ca_pem: bytes) -> str:
    """kubeadm's `caCertHashes` value: sha256 of the CA's DER SubjectPublicKeyInfo."""
    cert = x509.load_pem_x509_certificate(ca_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def admin_kubeconfig(secrets: Secrets, server: str, cluster_name: str) -> bytes:
    """The appliance's own kubeconfig (system:masters, like kubeadm's super-admin.conf), trusting only
    the cluster CA. It stays in credentials/: `wait` needs it before kubeadm has bound any group."""
    return kubeconfig(secrets.ca_crt, ADMIN_USER, secrets.admin_crt, secrets.admin_key, server, cluster_name)


def user_kubeconfig(secrets: Secrets, server: str, cluster_name: str, now: dt.datetime) -> bytes:
    """A fresh kubeconfig for the user, in kubeadm:cluster-admins (revocable), trusting only the CA."""
    ca_key = serialization.load_pem_private_key(secrets.ca_key, password=None)
    crt, key = _client_cert(secrets.ca_crt, ca_key, USER_NAME, CLUSTER_ADMINS, now)
    return kubeconfig(secrets.ca_crt, USER_NAME, crt, key, server, cluster_name)


def kubeconfig(ca_crt: bytes, user: str, crt: bytes, key: bytes, server: str, cluster_name: str) -> bytes:
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    context = f"{user}@{cluster_name}"
    doc = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": cluster_name, "cluster": {"server": server, "certificate-authority-data": b64(ca_crt)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(crt), "client-key-data": b64(key)}}],
        "contexts": [{"name": context, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": context,
    }
    return yaml.safe_dump(doc, sort_keys=False).encode()
