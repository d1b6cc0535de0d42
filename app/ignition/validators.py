"""Ignition's per-type semantic checks (config spec 3.3.0 and 3.4.0), one function per Go type.

`rules.check` walks the config in Go struct order and calls these; each returns (level, path
suffix, message) triples relative to the object it was given, in the order Ignition reports them.
"""

from __future__ import annotations

import posixpath
import re
import urllib.parse
from collections.abc import Callable

from app.ignition import messages as m
from app.ignition.systemd import UnitSyntaxError, go_quote, parse_unit

Found = list[tuple[str, tuple, str]]
UNIT_TYPES = (".service", ".socket", ".device", ".mount", ".automount", ".swap", ".target", ".path",
              ".timer", ".snapshot", ".slice", ".scope")
FS_FORMATS = ("ext4", "btrfs", "xfs", "swap", "vfat", "none")
RAID_LEVELS = ("linear", "raid0", "0", "stripe", "raid1", "1", "mirror", "raid4", "4", "raid5", "5",
               "raid6", "6", "raid10", "10")
HASH_SIZES = {"sha512": 128, "sha256": 64}
GUID = re.compile(r"^(|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$")
SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
INSTANCE = re.compile(r"^(.+?)@(.+?)\.service$")


def path_error(path: str | None) -> str | None:
    if not path:
        return m.NO_PATH
    if not path.startswith("/"):
        return m.PATH_RELATIVE
    if posixpath.normpath(path) != path or path.startswith("//"):
        return m.DIRTY_PATH
    return None


def url_error(url: str, version: str) -> str | None:
    """Ignition's validateURL for a non-empty source."""
    if url.startswith(":"):
        return m.INVALID_URL
    match = SCHEME.match(url)
    scheme = match.group(1).lower() if match else ""
    if scheme in ("http", "https", "tftp", "gs", "data"):
        return None
    if scheme == "s3":
        return _version_id_error(url) if version >= "3.4.0" else None
    if scheme == "arn" and version >= "3.4.0":
        return _arn_error(url)
    return m.INVALID_SCHEME


def _version_id_error(url: str) -> str | None:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query, keep_blank_values=True)
    if "versionId" in query and not query["versionId"][0]:
        return m.INVALID_S3_VERSION_ID
    return None


def _arn_error(url: str) -> str | None:
    full = url.split("?", 1)[0]
    sections = full.split(":", 5)
    if len(sections) < 6 or sections[2] != "s3":
        return m.INVALID_S3_ARN
    parts = full.split("/")
    if len(parts) < (3 if sections[5].startswith("accesspoint/") else 2):
        return m.INVALID_S3_ARN
    return _version_id_error(url)


def _required_source(res: dict, version: str) -> str | None:
    return url_error(res["source"], version) if res.get("source") else m.SOURCE_REQUIRED


def check_config(cfg: dict, version: str) -> Found:
    unit_paths = set()
    for unit in cfg.get("systemd", {}).get("units", []):
        if unit.get("contents"):
            unit_paths.add("/etc/systemd/system/" + unit.get("name", ""))
        for dropin in unit.get("dropins", []):
            if dropin.get("contents"):
                unit_paths.add(f"/etc/systemd/system/{unit.get('name', '')}.d/{dropin.get('name', '')}")
    return [("error", ("storage", kind, i, "path"), m.PATH_CONFLICTS_SYSTEMD)
            for kind in ("files", "directories", "links")
            for i, node in enumerate(cfg.get("storage", {}).get(kind, [])) if node.get("path") in unit_paths]


def check_ignition_config(ic: dict, version: str) -> Found:
    return [("error", ("merge", i), err) for i, res in enumerate(ic.get("merge", []))
            if (err := _required_source(res, version))]


def check_tls(tls: dict, version: str) -> Found:
    return [("error", ("certificateAuthorities", i), err)
            for i, res in enumerate(tls.get("certificateAuthorities", []))
            if (err := _required_source(res, version))]


def check_proxy(proxy: dict, version: str) -> Found:
    out: Found = []
    for key, http_ok in (("httpProxy", True), ("httpsProxy", False)):
        url = proxy.get(key)
        if url is None:
            continue
        match = SCHEME.match(url)
        scheme = match.group(1).lower() if match else ""
        if scheme not in ("http", "https"):
            out.append(("error", (key,), m.INVALID_PROXY))
        elif scheme == "http" and not http_ok:
            out.append(("warning", (key,), m.INSECURE_PROXY))
    return out


def check_resource(res: dict, version: str) -> Found:
    out: Found = []
    if res.get("compression") not in (None, "", "gzip"):
        out.append(("error", ("compression",), m.COMPRESSION_INVALID))
    if (res.get("verification") or {}).get("hash") is not None and res.get("source") is None:
        out.append(("error", ("verification", "hash"), m.VERIFICATION_NIL_SOURCE))
    if res.get("source") and (err := url_error(res["source"], version)):
        out.append(("error", ("source",), err))
    if res.get("httpHeaders"):
        scheme = (SCHEME.match(res.get("source") or "") or [None, ""])[1].lower()
        if not res.get("source"):
            out.append(("error", ("httpHeaders",), m.INVALID_URL))
        elif scheme not in ("http", "https"):
            out.append(("error", ("httpHeaders",), m.HEADERS_UNSUPPORTED_SCHEME))
    return out


def check_header(header: dict, version: str) -> Found:
    out: Found = []
    if not header.get("name"):
        out.append(("error", ("name",), m.EMPTY_HEADER_NAME))
    if header.get("value") == "":
        out.append(("error", ("value",), m.INVALID_HTTP_HEADER))
    return out


def check_verification(verification: dict, version: str) -> Found:
    digest = verification.get("hash")
    if digest is None:
        return []
    function, sep, value = digest.partition("-")
    if not sep:
        return [("error", ("hash",), m.HASH_MALFORMED)]
    if function not in HASH_SIZES:
        return [("error", ("hash",), m.HASH_UNRECOGNIZED)]
    return [("error", ("hash",), m.HASH_WRONG_SIZE)] if len(value) != HASH_SIZES[function] else []


def _check_mode(node: dict, version: str) -> Found:
    mode = node.get("mode")
    out: Found = []
    if mode is not None and not 0 <= mode <= 0o7777:
        out.append(("error", ("mode",), m.ILLEGAL_MODE))
    if mode is not None and version < "3.4.0" and mode & 0o7000:
        out.append(("warning", ("mode",), m.MODE_SPECIAL_BITS))
    return out


def check_file(node: dict, version: str) -> Found:
    out = [("error", ("path",), err) for err in [path_error(node.get("path"))] if err]
    out += _check_mode(node, version)
    if node.get("overwrite") and (node.get("contents") or {}).get("source") is None:
        out.append(("error", ("overwrite",), m.OVERWRITE_NIL_SOURCE))
    return out


def check_directory(node: dict, version: str) -> Found:
    return [("error", ("path",), err) for err in [path_error(node.get("path"))] if err] + _check_mode(node, version)


def check_link(node: dict, version: str) -> Found:
    """Link has no rules of its own; it inherits Node's (the path)."""
    return [("error", ("path",), err) for err in [path_error(node.get("path"))] if err]


def check_owner(owner: dict, version: str) -> Found:
    return [("error", (), m.BOTH_ID_AND_NAME)] if owner.get("id") is not None and owner.get("name") else []


def check_storage(storage: dict, version: str) -> Found:
    out: Found = []
    links = storage.get("links", [])
    for kind, message in (("directories", m.DIRECTORY_USED_SYMLINK), ("files", m.FILE_USED_SYMLINK)):
        for i, node in enumerate(storage.get(kind, [])):
            out += [("error", (kind, i), message) for link in links
                    if node.get("path", "").startswith(link.get("path", "") + "/")]
    for i, link in enumerate(links):
        out += _check_link(storage, link, i)
    disks = {d.get("device"): d for d in storage.get("disks", [])}
    for i, fs in enumerate(storage.get("filesystems", [])):
        disk = disks.get(fs.get("device"))
        if disk is None:
            continue
        if disk.get("partitions"):
            out.append(("warning", ("filesystems", i, "device"), m.PARTITIONS_OVERWRITTEN))
        elif not fs.get("wipeFilesystem") and disk.get("wipeTable"):
            out.append(("warning", ("filesystems", i, "device"), m.FILESYSTEM_IMPLICIT_WIPE))
    return out


def _check_link(storage: dict, link: dict, i: int) -> Found:
    out: Found = [("error", ("links", i), m.LINK_USED_SYMLINK) for other in storage.get("links", [])
                  if link.get("path", "").startswith(other.get("path", "") + "/")]
    target = link.get("target")
    if not target:
        return out + [("error", ("links", i, "target"), m.LINK_TARGET_REQUIRED)]
    if not link.get("hard"):
        return out
    resolved = posixpath.normpath(target)
    if not resolved.startswith("/"):
        resolved = posixpath.normpath(posixpath.join(link.get("path", ""), target))
    out += [("error", ("links", i), m.HARD_LINK_TO_DIRECTORY) for d in storage.get("directories", [])
            if d.get("path") == resolved]
    for owner in ("user", "group"):
        for key in ("id", "name"):
            if (link.get(owner) or {}).get(key) is not None:
                out.append(("warning", ("links", i, owner, key), m.HARD_LINK_SPECIFIES_OWNER))
    return out


def check_disk(disk: dict, version: str) -> Found:
    if not disk.get("device"):
        return [("error", ("device",), m.DISK_DEVICE_REQUIRED)]
    out = [("error", ("device",), err) for err in [path_error(disk["device"])] if err]
    parts = disk.get("partitions", [])
    numbers: dict[int, list[int]] = {}
    for i, p in enumerate(parts):
        if p.get("number"):
            numbers.setdefault(p["number"], []).append(i)
    collision = next((idx[1] for idx in numbers.values() if len(idx) > 1), None)
    if collision is not None:
        out.append(("error", ("partitions", collision), m.PARTITION_NUMBERS_COLLIDE))
    overlap = _overlap(parts)
    if overlap is not None:
        out.append(("error", ("partitions", overlap), m.PARTITIONS_OVERLAP))
    if any(not p.get("number") for p in parts) and any(p.get("shouldExist") is False for p in parts):
        out.append(("error", ("partitions",), m.ZEROES_WITH_SHOULD_NOT_EXIST))
    labels: set[str] = set()
    for i, p in enumerate(parts):
        if p.get("label") is not None:
            if p["label"] in labels:
                out.append(("error", ("partitions", i), m.DUPLICATE_LABELS))
                break
            labels.add(p["label"])
    return out


def _overlap(parts: list[dict]) -> int | None:
    def end(p: dict) -> int:
        return p["startMiB"] if p["sizeMiB"] == 0 else p["startMiB"] + p["sizeMiB"] - 1

    placed = [p for p in parts if p.get("startMiB") and p.get("sizeMiB") is not None]
    for p in placed:
        for i, o in enumerate(parts):
            if o not in placed or o == p:
                continue
            if o["startMiB"] <= p["startMiB"] <= end(o) or o["startMiB"] <= end(p) <= end(o) \
                    or (p["startMiB"] < o["startMiB"] and end(p) > end(o)):
                return i
    return None


def check_partition(p: dict, version: str) -> Found:
    out: Found = []
    if p.get("shouldExist") is False and (p.get("label") is not None or p.get("typeGuid") or p.get("guid")
                                          or p.get("startMiB") is not None or p.get("sizeMiB") is not None):
        out.append(("error", (), m.SHOULD_NOT_EXIST_WITH_OTHERS))
    if not p.get("number") and p.get("label") is None:
        out.append(("error", (), m.NEED_LABEL_OR_NUMBER))
    label = p.get("label")
    if label is not None and len(label.encode()) > 36:
        out.append(("error", ("label",), m.PARTITION_LABEL_TOO_LONG))
    elif label is not None and ":" in label:
        out.append(("error", ("label",), m.PARTITION_LABEL_COLON))
    for key in ("guid", "typeGuid"):
        if p.get(key) is not None and not GUID.match(p[key]):
            out.append(("error", (key,), m.GUID_FORM))
    return out


def check_filesystem(fs: dict, version: str) -> Found:
    out = [("error", ("path",), err) for err in [fs.get("path") and path_error(fs["path"])] if err]
    out += [("error", ("device",), err) for err in [path_error(fs.get("device"))] if err]
    fmt, label = fs.get("format"), fs.get("label")
    if not fmt:
        if fs.get("path") or label or fs.get("uuid") or fs.get("wipeFilesystem") or fs.get("mountOptions") \
                or fs.get("options"):
            out.append(("error", ("format",), m.FORMAT_NIL_WITH_OTHERS))
    elif fmt not in FS_FORMATS:
        out.append(("error", ("format",), m.FILESYSTEM_INVALID_FORMAT))
    if label and not fmt:
        out.append(("error", ("label",), m.LABEL_NEEDS_FORMAT))
    elif label and fmt in m.FS_LABEL_MAX and len(label.encode()) > m.FS_LABEL_MAX[fmt]:
        out.append(("error", ("label",), m.FS_LABEL_TOO_LONG.format(max=m.FS_LABEL_MAX[fmt], format=fmt)))
    return out


def check_luks(luks: dict, version: str) -> Found:
    out: Found = []
    if "/" in luks.get("name", ""):
        out.append(("error", ("name",), m.LUKS_NAME_SLASH))
    if luks.get("label") and len(luks["label"].encode()) > 47:
        out.append(("error", ("label",), m.LUKS_LABEL_TOO_LONG))
    if not luks.get("device"):
        out.append(("error", ("device",), m.DISK_DEVICE_REQUIRED))
    elif err := path_error(luks["device"]):
        out.append(("error", ("device",), err))
    source = (luks.get("keyFile") or {}).get("source")
    if source and url_error(source, version):
        out.append(("error", ("keys",), m.LUKS_KEY_FILE))  # sic: Ignition names a field that does not exist
    return out


def check_raid(raid: dict, version: str) -> Found:
    level, spares = raid.get("level"), raid.get("spares")
    out: Found = []
    if not level:
        out.append(("error", ("level",), m.RAID_LEVEL_REQUIRED))
    elif level not in RAID_LEVELS:
        out.append(("error", ("level",), m.UNRECOGNIZED_RAID_LEVEL))
    elif level in ("linear", "raid0", "0", "stripe") and spares:
        out.append(("error", ("level",), m.SPARES_UNSUPPORTED))
    if not raid.get("devices"):
        out.append(("error", ("devices",), m.RAID_DEVICES_REQUIRED))
    out += [("error", ("devices", i), err) for i, dev in enumerate(raid.get("devices", []))
            if (err := path_error(dev))]
    return out


def _unit_options(contents: str | None) -> tuple[list | None, str | None]:
    try:
        return parse_unit(contents), None
    except UnitSyntaxError as exc:
        return None, m.INVALID_UNIT_CONTENT.format(exc)


def check_systemd(systemd: dict, version: str) -> Found:
    units = {u.get("name"): u for u in systemd.get("units", [])}
    out: Found = []
    for i, unit in enumerate(systemd.get("units", [])):
        match = INSTANCE.match(unit.get("name", ""))
        if not match or not unit.get("enabled"):
            continue
        template = units.get(match.group(1) + "@.service")
        if template is None or not template.get("contents"):
            continue
        options, err = _unit_options(template["contents"])
        if err is None and not any(o.section == "Install" for o in options):
            out.append(("warning", ("units", i, "contents"),
                        m.TEMPLATE_NO_INSTALL.format(go_quote((match.group(1) + "@.service").encode()),
                                                   go_quote(unit.get("name", "").encode()))))
    return out


def check_unit(unit: dict, version: str) -> Found:
    name = unit.get("name", "")
    out: Found = [] if posixpath.splitext(name)[1] in UNIT_TYPES else [("error", ("name",), m.INVALID_SYSTEMD_EXT)]
    options, err = _unit_options(unit.get("contents"))
    if err:
        out.append(("error", ("contents",), err))
    elif unit.get("enabled") and unit.get("contents") and not any(o.section == "Install" for o in options):
        out.append(("warning", ("contents",), m.NO_INSTALL_SECTION.format(go_quote(name.encode()))))
    return out


def check_dropin(dropin: dict, version: str) -> Found:
    out: Found = [("error", ("contents",), err) for err in [_unit_options(dropin.get("contents"))[1]] if err]
    if posixpath.splitext(dropin.get("name", ""))[1] != ".conf":
        out.append(("error", ("name",), m.INVALID_DROPIN_EXT))
    return out


CHECKS: dict[str, Callable[[dict, str], Found]] = {
    "Config": check_config, "IgnitionConfig": check_ignition_config, "TLS": check_tls, "Proxy": check_proxy,
    "Resource": check_resource, "Header": check_header, "Verification": check_verification,
    "File": check_file, "Directory": check_directory, "Link": check_link,
    "NodeOwner": check_owner, "Storage": check_storage,
    "Disk": check_disk, "Partition": check_partition, "Filesystem": check_filesystem, "Luks": check_luks,
    "Raid": check_raid, "Systemd": check_systemd, "Unit": check_unit, "Dropin": check_dropin,
}
