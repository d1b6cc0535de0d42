"""Field types of cluster.yaml: each parses one string and says plainly what is wrong with it.

Every parser takes the raw YAML value and raises ValueError with a message meant for the person
editing cluster.yaml; the model wraps them as pydantic types with a JSON Schema for editors.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import posixpath
import re
import struct
from typing import Annotated, Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from pydantic import BeforeValidator, WithJsonSchema

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
K8S_VERSION = re.compile(r"v(\d+)\.(\d+)\.(\d+)")
FLATCAR_VERSION = re.compile(r"\d+\.\d+\.\d+")
TOKEN = re.compile(r"[a-z0-9]{6}\.[a-z0-9]{16}")
MIN_K8S = (1, 31)
SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        shown = f" {value!r}" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
        raise ValueError(f"must be {what} written as a string, not {yaml_type(value)}{shown}")
    return value.strip()


def shown(value: Any) -> str:
    """A value quoted for a message, cut short: a message must stay one readable line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + "…" + text[-1]


def yaml_type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", list: "a list",
             dict: "a mapping", type(None): "empty"}
    return names.get(type(value), "a string")


def _matching(pattern: re.Pattern, what: str, explain: str):
    """A parser of text that must match `pattern`: `what` names the value when it is not text at all,
    `explain` follows the value in the message when it does not match."""
    def parse(value: Any) -> str:
        text = _text(value, what)
        if not pattern.fullmatch(text):
            raise ValueError(f"{shown(text)} {explain}")
        return text
    return parse


parse_dns_label = _matching(DNS_LABEL, "a name", "is not a DNS-1123 label: use 1-63 lower-case letters, digits "
                            "and '-', starting and ending with a letter or digit")
parse_flatcar_version = _matching(FLATCAR_VERSION, "a version like 4081.3.6",
                                  "is not a Flatcar release of the form X.Y.Z (e.g. 4081.3.6)")


def parse_dns_name(value: Any) -> str:
    text = _text(value, "a DNS name").rstrip(".")
    if len(text) > 253 or not all(DNS_LABEL.fullmatch(p) for p in text.split(".")):
        raise ValueError(f"{shown(text)} is not a valid DNS name (lower-case labels separated by dots)")
    return text


def parse_k8s_version(value: Any) -> str:
    text = _text(value, "a version like v1.36.3")
    m = K8S_VERSION.fullmatch(text)
    if not m:
        hint = f"; did you mean 'v{text}'?" if K8S_VERSION.fullmatch("v" + text) else ""
        raise ValueError(f"{shown(text)} is not a Kubernetes version of the form vX.Y.Z{hint}")
    if (int(m[1]), int(m[2])) < MIN_K8S:
        raise ValueError(f"{text} is too old: kubeadm v1beta4 configuration needs v1.31 or newer")
    return text


def parse_mac(value: Any) -> str:
    """Accept aa:bb:.., aa-bb-.. or aabb.ccdd.eeff, in any case; return lower-case colon form."""
    text = _text(value, "a MAC address")
    separators = set(re.findall(r"[:\-.]", text))
    if len(separators) > 1:
        raise ValueError(f"{shown(text)} mixes separators ({' and '.join(sorted(separators))}); write a MAC "
                         "with one style throughout, like 52:54:00:12:34:56")
    digits = re.sub(r"[:\-.]", "", text)
    if not separators and re.fullmatch(r"[0-9a-fA-F]{12}", text):
        spelled = ":".join(text[i:i + 2] for i in range(0, 12, 2)).lower()
        raise ValueError(f"{shown(text)} is not a MAC address as written; did you mean \"{spelled}\"?")
    shapes = (r"([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}", r"([0-9a-fA-F]{4}\.){2}[0-9a-fA-F]{4}")
    if not any(re.fullmatch(s, text) for s in shapes) or len(digits) != 12:
        raise ValueError(f"{shown(text)} is not a MAC address (expected six hex pairs like 52:54:00:12:34:56)")
    mac = ":".join(digits[i:i + 2] for i in range(0, 12, 2)).lower()
    if int(digits[:2], 16) & 1:
        raise ValueError(f"{mac} is a multicast address; a NIC's MAC is unicast (first byte even)")
    if digits.strip("0") == "":
        raise ValueError("00:00:00:00:00:00 is not a usable MAC address")
    return mac


def parse_ipv4(value: Any) -> ipaddress.IPv4Address:
    text = _text(value, "an IPv4 address")
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise ValueError(f"{shown(text)} is not an IPv4 address") from None


DNS_NEEDED = ("give at least one DNS server: Flatcar has no fallback resolver, so without one containerd "
              "cannot pull images and kubeadm retries forever (the gateway is a common choice if it "
              "answers DNS)")


def parse_dns_servers(value: Any) -> Any:
    """An empty list is refused here; the items are then checked as IPv4 addresses."""
    if value is None or value == []:
        raise ValueError(f"is empty: {DNS_NEEDED}")
    return value


def parse_time_server(value: Any) -> str:
    """An NTP server as systemd-networkd's NTP= takes it: an IPv4 address or a DNS name."""
    text = _text(value, "an NTP server (address or DNS name)").rstrip(".")
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        pass
    if re.fullmatch(r"[0-9.]+", text) or len(text) > 253 or not all(DNS_LABEL.fullmatch(p) for p in text.split(".")):
        raise ValueError(f"{shown(text)} is neither an IPv4 address nor a DNS name")
    return text


def parse_ipv4_network(value: Any) -> ipaddress.IPv4Network:
    text = _text(value, "a CIDR like 10.0.0.0/24")
    if "/" not in text:
        like = f", like {text}/24" if re.fullmatch(r"[0-9.]{7,15}", text) else ""
        raise ValueError(f"{shown(text)} needs a prefix length{like}")
    try:
        return ipaddress.IPv4Network(text)
    except ValueError as exc:
        if "host bits set" in str(exc):
            fixed = ipaddress.IPv4Network(text, strict=False)
            raise ValueError(f"{text} has host bits set; did you mean {fixed}?") from None
        raise ValueError(f"{shown(text)} is not an IPv4 network in CIDR form") from None


def parse_ssh_key(value: Any) -> str:
    """A public key line: known type, base64 body whose embedded type matches, optional comment."""
    text = _text(value, "an SSH public key")
    if text.startswith("-----BEGIN") or "PRIVATE KEY" in text:
        # Never echo it: whatever was pasted here is a secret that must not reach a terminal or log.
        raise ValueError("this is a private key: put the public half here (the .pub file, or what "
                         "`ssh-keygen -y -f KEY` prints), and remove the private key from cluster.yaml")
    parts = text.split(None, 2)
    if len(parts) < 2:
        raise ValueError("is not an SSH public key: expected '<type> <base64> [comment]'")
    kind, body = parts[0], parts[1]
    if kind not in SSH_KEY_TYPES:
        raise ValueError(f"unknown SSH key type {shown(kind)} (use one of: {', '.join(SSH_KEY_TYPES)})")
    try:
        blob = base64.b64decode(body, validate=True)
        fields = _ssh_strings(blob)
    except (binascii.Error, ValueError):
        raise ValueError(f"the {kind} key body is not valid base64 key data (was it cut short?)") from None
    if fields[0] != kind.encode():
        raise ValueError(f"the key body is a {fields[0].decode(errors='replace')} key but the line says {kind}")
    if not kind.startswith("sk-"):
        try:  # cryptography knows the standard key types and checks the key material itself
            serialization.load_ssh_public_key(f"{kind} {body}".encode())
        except (ValueError, UnsupportedAlgorithm):
            raise ValueError(f"the {kind} key body does not hold a valid key (was it cut short?)") from None
    return text


def _ssh_strings(blob: bytes) -> list[bytes]:
    """Split the SSH wire format (uint32 length + bytes, repeated); it must use every byte."""
    out, at = [], 0
    while at < len(blob):
        if at + 4 > len(blob):
            raise ValueError("truncated")
        (length,) = struct.unpack(">I", blob[at:at + 4])
        if at + 4 + length > len(blob):
            raise ValueError("truncated")
        out.append(blob[at + 4:at + 4 + length])
        at += 4 + length
    if len(out) < 2:
        raise ValueError("no key material")
    return out


def parse_token(value: Any) -> str:
    text = _text(value, "a token")
    if not TOKEN.fullmatch(text):
        raise ValueError("is not a kubeadm bootstrap token: expected 6 and 16 characters of "
                         "[a-z0-9] joined by a dot, like abcdef.0123456789abcdef")
    return text


# Names the kernel hands out in probe order: which disk is sda (or nvme0n1) can change with a USB stick,
# BMC virtual media or a controller that probes first.
KERNEL_DISK_NAME = re.compile(r"/dev/(sd[a-z]+|vd[a-z]+|hd[a-z]+|xvd[a-z]+|nvme\d+n\d+|mmcblk\d+)")


# The characters udev leaves in /dev names (it replaces the rest of a model or serial with '_' or \xNN),
# and '/'. install_disk is pasted into the install script as a shell word: nothing else may reach it.
DISK_CHARS = "A-Za-z0-9/#+.:=@_,-"
DISK_PATTERN = f"^/dev/[{DISK_CHARS}]+$"  # the JSON schema's and the Machine CRD's spelling of it
DISK_PATH = re.compile(DISK_PATTERN)


def parse_disk(value: Any) -> str:
    text = _text(value, "a device path")
    if not text.startswith("/dev/") or posixpath.normpath(text) != text or text == "/dev/":
        raise ValueError(f"{shown(text)} must be an absolute device path under /dev/, like /dev/sda "
                         "or /dev/disk/by-id/...")
    if not DISK_PATH.fullmatch(text):
        raise ValueError(f"{shown(text)}: a device path may hold only letters, digits and / # + . : = @ _ , - "
                         "(it becomes a word of the install script)")
    return text


def parse_ifname(value: Any) -> str:
    text = _text(value, "an interface name")
    if not 0 < len(text) <= 15 or "/" in text or any(c.isspace() for c in text):
        raise ValueError(f"{shown(text)} is not a Linux interface name (1-15 characters, no '/' or spaces)")
    return text


def parse_port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a port number, not {yaml_type(value)}")
    if not 1 <= value <= 65535:
        raise ValueError(f"{value} is outside the port range 1-65535")
    return value


GIT_URL = re.compile(r"(https?|ssh|git)://[^\s/]+(/\S*)?|[\w.-]+@[\w.-]+:\S+")


# A sysext's name and version make its file name (`<name>-<version>-<arch>.raw`, the bakery's
# naming), a directory under /opt/extensions and a sysupdate pattern: nothing that is not a plain word.
SYSEXT_NAME = re.compile(r"[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?")
SYSEXT_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~-]{0,63}")


parse_git_url = _matching(GIT_URL, "a repository URL", "is not a Git repository URL (https://host/org/repo.git, "
                          "ssh://..., or git@host:org/repo.git)")
parse_sysext_name = _matching(SYSEXT_NAME, "an extension name", "is not a sysext name like the bakery's (containerd, "
                              "nvidia-runtime): lower-case letters, digits, '-' and '_'")
parse_sysext_version = _matching(SYSEXT_VERSION, "a version like 2.0.4", "is not a sysext version (letters, digits "
                                 "and . _ + ~ -, like 2.0.4 or v1.17.5)")


def _string_type(parser, schema: dict):
    return [BeforeValidator(parser), WithJsonSchema({"type": "string", **schema})]


DnsLabel = Annotated[str, *_string_type(parse_dns_label, {"pattern": f"^{DNS_LABEL.pattern}$", "maxLength": 63})]
DnsName = Annotated[str, *_string_type(parse_dns_name, {"format": "hostname"})]
K8sVersion = Annotated[str, *_string_type(parse_k8s_version, {"pattern": r"^v\d+\.\d+\.\d+$"})]
FlatcarVersion = Annotated[str, *_string_type(parse_flatcar_version, {"pattern": r"^\d+\.\d+\.\d+$"})]
Mac = Annotated[str, *_string_type(parse_mac, {  # \1: the same separator throughout
    "pattern": r"^[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}$|^([0-9A-Fa-f]{4}\.){2}[0-9A-Fa-f]{4}$"})]
IPv4 = Annotated[ipaddress.IPv4Address, *_string_type(parse_ipv4, {"format": "ipv4"})]
IPv4Net = Annotated[ipaddress.IPv4Network, *_string_type(parse_ipv4_network, {"pattern": r"^[0-9.]+/\d+$"})]
SshKey = Annotated[str, *_string_type(parse_ssh_key, {"pattern": r"^(ssh|ecdsa|sk)-\S+ \S+"})]
Token = Annotated[str, *_string_type(parse_token, {"pattern": "^" + TOKEN.pattern + "$"})]
Disk = Annotated[str, *_string_type(parse_disk, {"pattern": DISK_PATTERN})]
IfName = Annotated[str, *_string_type(parse_ifname, {"maxLength": 15})]
GitUrl = Annotated[str, *_string_type(parse_git_url, {"pattern": f"^(?:{GIT_URL.pattern})$"})]
SysextName = Annotated[str, *_string_type(parse_sysext_name, {"pattern": f"^{SYSEXT_NAME.pattern}$"})]
SysextVersion = Annotated[str, *_string_type(parse_sysext_version, {"pattern": f"^{SYSEXT_VERSION.pattern}$"})]
DnsServers = Annotated[list[IPv4], BeforeValidator(parse_dns_servers),
                      WithJsonSchema({"type": "array", "items": {"type": "string", "format": "ipv4"}, "minItems": 1})]
TimeServer = Annotated[str, *_string_type(parse_time_server, {"anyOf": [{"format": "ipv4"}, {"format": "hostname"}]})]
Port = Annotated[int, BeforeValidator(parse_port),
                 WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 65535})]
