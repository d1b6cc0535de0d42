"""What Matchbox renders: iPXE and GRUB scripts, metadata env files, and Ignition from a data dir
(raw `.ign` upgraded to 3.4.0, or a Go-template Butane file). Pure functions of their inputs.
"""

from __future__ import annotations

import json
import re

from app.ignition import butane, rules as ignition
from app.layout import CREDENTIAL_PATH
from app.serve.matchbox import RenderFailedError

BOOT_IPXE = ("#!ipxe\nchain ipxe?uuid=${uuid}&mac=${mac:hexhyp}&domain=${domain}&hostname=${hostname}"
             "&serial=${serial}&arch=${buildarch:uristring}\n")
SERVED_IGNITION = "3.4.0"
UPGRADABLE = re.compile(r"3\.[0-4]\.0")


class RenderFailed(RenderFailedError):
    """Anything Matchbox answers with 404: missing key, bad template, invalid config."""


def ipxe_script(boot: dict) -> str:
    kernel = " ".join([boot.get("kernel", ""), *boot.get("args", [])]).strip()
    lines = ["#!ipxe", f"kernel {kernel}"]
    lines += [f"initrd {initrd}" for initrd in boot.get("initrd", [])]
    return "\n".join(lines + ["boot"]) + "\n"


def grub_script(boot: dict) -> str:
    args = " ".join(boot.get("args", []))
    initrds = " ".join(f'"{i}"' for i in boot.get("initrd", []))
    kernel = f'"{boot.get("kernel", "")}"' + (f" {args}" if args else "")
    entries = []
    for title, linux, initrd in (("CoreOS (EFI)", "linuxefi", "initrdefi"), ("CoreOS (BIOS)", "linux", "initrd")):
        entries.append(f'menuentry "{title}" {{\necho "Loading kernel"\n{linux} {kernel}\n'
                       f'echo "Loading initrd"\n{initrd}  {initrds}\n}}\n')
    return "default=0\nfallback=1\ntimeout=1\n" + "".join(entries)


def local_boot_script(node: str) -> str:
    return f"#!ipxe\necho bootstrap-node: {node} is installed; booting from its disk\nexit\n"


def unknown_machine_script(mac: str, retry_seconds: int) -> str:
    return ("#!ipxe\n"
            f"echo bootstrap-node: no node in cluster.yaml has MAC {mac}\n"
            "echo Add it to nodes: (see `bootstrap-node discover`) and run generate; retrying.\n"
            f"sleep {retry_seconds}\nchain --autofree boot.ipxe\n")


def template_variables(group_metadata: dict, selector: dict, labels: dict, raw_query: str) -> dict:
    """Matchbox's template data: metadata, then selectors (lower-cased keys), then `request`."""
    data = dict(group_metadata)
    data.update({k.lower(): v for k, v in selector.items()})
    data["request"] = {"query": dict(labels), "raw_query": raw_query}
    return data


def metadata_env(variables: dict) -> str:
    lines: list[str] = []
    _flatten("", variables, lines)
    return "".join(lines)


def _flatten(prefix: str, value, lines: list[str]) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}_{key}" if prefix else str(key), sub, lines)
    elif value is None or isinstance(value, list):
        return
    else:
        lines.append(f"{prefix.upper()}={_go_value(value)}\n")


def _go_value(value) -> str:
    """Go's %v of what encoding/json decodes: bools lower-case, every number a float64."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        number = float(value)
        if number.is_integer() and abs(number) < 1e21:
            return str(int(number))
        text = repr(number)
        return re.sub(r"e([+-]?)0*(\d\d)", lambda m: f"e{m[1] or '+'}{m[2]}", text)
    return str(value)


_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def go_template(text: str, variables: dict) -> str:
    """The subset of Go text/template Matchbox data dirs use: `{{.a.b}}` field lookups, with
    missingkey=error. Anything else (if, range, pipelines) is refused rather than guessed."""
    def substitute(match: re.Match) -> str:
        expr = match[2]
        if not re.fullmatch(r"(\.[A-Za-z_][A-Za-z0-9_]*)+|\.", expr):
            raise RenderFailed(f"unsupported template action {{{{{expr}}}}}")
        value = variables
        for part in [p for p in expr.split(".") if p]:
            if not isinstance(value, dict) or part not in value:
                raise RenderFailed(f"map has no entry for key {part!r}")
            value = value[part]
        return _go_value(value) if not isinstance(value, (dict, list)) else json.dumps(value)
    out, pos = [], 0
    for match in _ACTION.finditer(text):
        before = text[pos:match.start()]
        out.append(before.rstrip() if match[1] else before)
        out.append(substitute(match))
        pos = match.end()
        if match[3]:
            rest = text[pos:]
            pos += len(rest) - len(rest.lstrip())
    out.append(text[pos:])
    return "".join(out)


def ignition_bytes(file_name: str, raw: bytes, variables: dict) -> bytes:
    """Serve an ignition/ file the way Matchbox does: compact 3.4.0 JSON without a newline."""
    if file_name.endswith((".ign", ".ignition")):
        try:
            config = json.loads(raw)
        except ValueError as exc:
            raise RenderFailed(f"{file_name}: not JSON: {exc}") from None
        version = config.get("ignition", {}).get("version", "") if isinstance(config, dict) else ""
        if not UPGRADABLE.fullmatch(str(version)):
            raise RenderFailed(f"{file_name}: Ignition version {version!r} is not 3.0.0-3.4.0")
        config["ignition"]["version"] = SERVED_IGNITION
        return ignition.dumps(config).rstrip(b"\n")
    try:
        text = go_template(raw.decode(), variables)
        config = butane.translate(text, strict=False, name=file_name).config
    except (UnicodeDecodeError, butane.ButaneError) as exc:
        raise RenderFailed(f"{file_name}: {exc}") from None
    return ignition.dumps(config).rstrip(b"\n")


def with_credential(served: bytes, credential: str) -> bytes:
    """A served config plus one file: the credential this copy, and only this copy, carries."""
    config = json.loads(served)
    files = config.setdefault("storage", {}).setdefault("files", [])
    files[:] = [f for f in files if f.get("path") != CREDENTIAL_PATH]
    files.append({"path": CREDENTIAL_PATH, "contents": {"source": "data:," + credential}, "mode": 0o600,
                  "overwrite": True})
    return ignition.dumps(config).rstrip(b"\n")
