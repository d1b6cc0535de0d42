"""What Matchbox renders: iPXE and GRUB scripts, metadata env files, and Ignition from a data dir
(raw `.ign` upgraded to 3.4.0, or a Go-template Butane file rendered by app.gotemplate). Pure functions
of their inputs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from app import gotemplate
from app.ignition import butane
from app.ignition import rules as ignition
from app.ignition.matchbox_shape import as_matchbox_serves
from app.layout import CREDENTIAL_PATH
from app.serve.boot.policy import Answer, Decision

BOOT_IPXE = ("#!ipxe\nchain ipxe?uuid=${uuid}&mac=${mac:hexhyp}&domain=${domain}&hostname=${hostname}"
             "&serial=${serial}&arch=${buildarch:uristring}\n")
SERVED_IGNITION = "3.4.0"
UPGRADABLE = re.compile(r"3\.[0-4]\.0")


class RenderFailed(ValueError):
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


def held_script(node: str, retry_seconds: int) -> str:
    """For a node whose install is under way (or contested) when a machine PXE-boots as it again: no
    installer, no window; it waits for an operator's `reinstall` and then carries on by itself."""
    return ("#!ipxe\n"
            f"echo bootstrap-node: {node} already received its install config, or another machine claimed it\n"
            f"echo An operator must run `bootstrap-node reinstall {node}`; retrying.\n"
            f"sleep {retry_seconds}\nchain --autofree boot.ipxe\n")


def refusal(reason: str) -> str:
    return f"refused: {reason}\n"


def script_text(decision: Decision, retry_seconds: int, boot_script: Callable[[dict], str] = ipxe_script) -> str | None:
    """The text a boot-script decision (/ipxe, /grub) answers with; None for Matchbox's 404."""
    if decision.answer is Answer.SCRIPT:
        return boot_script(decision.profile["boot"])
    if decision.answer is Answer.LOCAL_BOOT:
        return local_boot_script(decision.node)
    if decision.answer is Answer.UNKNOWN_MACHINE:
        return unknown_machine_script(decision.node, retry_seconds)
    if decision.answer is Answer.HELD:
        return held_script(decision.node, retry_seconds)
    if decision.answer is Answer.REFUSED:
        return refusal(decision.reason)
    return None


def template_variables(group_metadata: dict, selector: dict, labels: dict, raw_query: str) -> dict:
    """Matchbox's template data: metadata, then selectors (lower-cased keys), then `request`."""
    data = dict(group_metadata)
    data.update({k.lower(): v for k, v in selector.items()})
    data["request"] = {"query": dict(labels), "raw_query": raw_query}
    return data


def metadata_env(variables: dict) -> str:
    """Matchbox's renderAsEnvFile: `KEY=%v` for every string, bool and number (a float64, so 1234567 is
    1.234567e+06), nested maps flattened as OUTER_INNER, lists and nulls left out."""
    lines: list[str] = []
    _flatten("", variables, lines)
    return "".join(lines)


def _flatten(prefix: str, value, lines: list[str]) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}_{key}" if prefix else str(key), sub, lines)
    elif isinstance(value, (str, bool, int, float)):
        lines.append(f"{prefix.upper()}={gotemplate.go_value(value)}\n")


def go_template(text: str, variables: dict) -> str:
    """Go's text/template as Matchbox runs it: template name "", missingkey=error, JSON numbers as
    float64, request.query a map[string]string. Any parse or execution error is RenderFailed (404)."""
    request = variables.get("request")
    if isinstance(request, dict) and isinstance(request.get("query"), dict):
        variables = {**variables, "request": {**request, "query": gotemplate.StringMap(request["query"])}}
    try:
        return gotemplate.render(text, variables, name="")
    except gotemplate.TemplateError as exc:
        raise RenderFailed(str(exc)) from None


def ignition_bytes(file_name: str, raw: bytes, variables: dict, *, matchbox_shape: bool = False) -> bytes:
    """Serve an ignition/ file the way Matchbox does: compact 3.4.0 JSON without a newline.
    `matchbox_shape` (foreign data dirs): also Matchbox's Go-struct shape and 3.4.0 for Butane."""
    if file_name.endswith((".ign", ".ignition")):
        try:
            config = json.loads(raw)
        except ValueError as exc:
            raise RenderFailed(f"{file_name}: not JSON: {exc}") from None
        version = config.get("ignition", {}).get("version", "") if isinstance(config, dict) else ""
        if not UPGRADABLE.fullmatch(str(version)):
            raise RenderFailed(f"{file_name}: Ignition version {version!r} is not 3.0.0-3.4.0")
        config["ignition"]["version"] = SERVED_IGNITION
        # Matchbox serves an empty config (which Ignition rejects) for one that fails validation; a
        # value of the wrong JSON type fails Go's unmarshalling there, and the checks here.
        try:
            errors = [report.text() for report in ignition.check(config) if report.level == "error"]
        except (AttributeError, TypeError, ValueError) as exc:
            errors = [f"a value of the wrong type ({exc})"]
        if errors:
            raise RenderFailed(f"{file_name}: invalid Ignition: {'; '.join(errors)}")
        return ignition.dumps(as_matchbox_serves(config) if matchbox_shape else config).rstrip(b"\n")
    try:
        text = go_template(raw.decode(), variables)
        config = butane.translate(text, strict=False, name=file_name).config
    except (UnicodeDecodeError, butane.ButaneError) as exc:
        raise RenderFailed(f"{file_name}: {exc}") from None
    return ignition.dumps(as_matchbox_serves(config) if matchbox_shape else config).rstrip(b"\n")


def with_credential(served: bytes, credential: str) -> bytes:
    """A served config plus one file: the credential this copy, and only this copy, carries."""
    config = json.loads(served)
    files = config.setdefault("storage", {}).setdefault("files", [])
    files[:] = [f for f in files if f.get("path") != CREDENTIAL_PATH]
    files.append({"path": CREDENTIAL_PATH, "contents": {"source": "data:," + credential}, "mode": 0o600,
                  "overwrite": True})
    return ignition.dumps(config).rstrip(b"\n")
