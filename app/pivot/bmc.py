"""BMC passwords kept in Secrets: a Machine's `bmc.passwordSecret`, for cluster mode.

cluster.yaml reads a BMC password from a file or a variable where the appliance runs; a Machine may
name instead a Secret in its own namespace whose `password` key holds it. Cluster mode (`serve
--from-cluster`, in the appliance's pod) reads each Secret the Machines name, as its ServiceAccount,
and writes the password into a file of its own (0600, in a 0700 directory beside the served tree,
never in it), and the cluster.yaml it renders names that file. So the power code reads it the way
it reads any password file, and a Machine with its password in a Secret renders like any other.

A Machine's `bmc.passwordFile` and `bmc.passwordEnv` name a file or a variable where the appliance
runs, and in cluster mode that is its pod: its own files (the CA keys, the bootstrap token) and its
environment. Cluster mode does not read them: such a Machine is rendered without its BMC (powered
`manual`: served and installed as any other, never powered through its BMC by the pod), and its
status.lastError says why and what to do. Refusing the whole render would stop every other Machine
for one author's mistake; refusing at the CRD would make `pivot` refuse every cluster.yaml with a BMC
(cluster.yaml cannot name a Secret) and `unpivot` unable to give such a cluster.yaml back.

`unpivot` does not do this (it would copy BMC passwords onto whatever machine it runs on); it
refuses such a Machine by name (app/cluster/machines.py).

Only the `password` key is read, and never from the appliance's own state Secret, which carries the
CA keys: a Machine's author picks the Secret and the address the password is sent to.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from app.atomic_file import atomic_write
from app.cluster.machines import MachineError
from app.pivot.state import CREDENTIALS_SECRET
from app.wait import kube

PASSWORD_KEY = "password"
# A Secret's name is a DNS subdomain (the API server refuses anything else), so it is a safe file name.
SAFE = set("abcdefghijklmnopqrstuvwxyz0123456789-.")


LOCAL_SOURCES = {"passwordFile": "a file", "passwordEnv": "an environment variable"}


def set_aside_local_sources(machines: list[dict]) -> tuple[list[dict], dict[str, str]]:
    """For cluster mode: the Machines, those whose BMC password is a file or variable without their
    BMC and powered `manual`; and MAC -> why, for each of those (its status.lastError). Pure: the
    objects given are not changed."""
    kept, refused = [], {}
    for machine in machines:
        spec = machine.get("spec") or {}
        source = next((key for key in LOCAL_SOURCES if key in (spec.get("bmc") or {})), None)
        if source is None:
            kept.append(machine)
            continue
        refused[str(spec.get("mac", ""))] = (
            f"bmc.{source} names {LOCAL_SOURCES[source]} where the appliance runs, which in cluster mode is its "
            f"pod: not read, so this machine is not powered through its BMC. Put the password in a Secret "
            f"(key {PASSWORD_KEY!r}) in this namespace and name it in bmc.passwordSecret instead of {source}")
        without = {key: value for key, value in spec.items() if key != "bmc"}
        kept.append({**machine, "spec": {**without, "power": "manual"}})
    return kept, refused


def secret_hints(machines: list[dict]) -> list[str]:
    """What `pivot` says of each Machine it made whose BMC password is a file or variable: cluster
    mode will not use it (see set_aside_local_sources), and the two commands that move it into a Secret."""
    hints = []
    for machine in machines:
        meta, bmc = machine["metadata"], (machine.get("spec") or {}).get("bmc") or {}
        source = next((key for key in LOCAL_SOURCES if key in bmc), None)
        if source is None:
            continue
        name, namespace = meta["name"], meta["namespace"]
        value = f"--from-file={PASSWORD_KEY}={bmc[source]}" if source == "passwordFile" \
            else f"--from-literal={PASSWORD_KEY}=\"${bmc[source]}\""
        patch = f'{{"spec":{{"bmc":{{"{source}":null,"passwordSecret":"bmc-{name}"}}}}}}'
        hints.append(f"Machine {name}: its BMC password is {LOCAL_SOURCES[source]} here, which cluster mode does "
                     f"not read; to power it from the cluster: kubectl -n {namespace} create secret generic "
                     f"bmc-{name} {value} && kubectl -n {namespace} patch machine {name} --type=merge -p '{patch}'")
    return hints


def named_secrets(machines: list[dict]) -> dict[str, list[str]]:
    """Secret name -> the Machines that name it in bmc.passwordSecret."""
    out: dict[str, list[str]] = {}
    for machine in machines:
        secret = ((machine.get("spec") or {}).get("bmc") or {}).get("passwordSecret")
        if secret is not None:
            out.setdefault(secret, []).append(machine.get("metadata", {}).get("name", "?"))
    return out


def password_of(secret: dict, name: str, machines: list[str]) -> bytes:
    """The `password` value of a Secret (the API's JSON); MachineError naming the Machines when it has none."""
    who = f"Machine {', '.join(machines)}: bmc.passwordSecret {name!r}"
    if name == CREDENTIALS_SECRET:
        raise MachineError(f"{who} is the appliance's own state, not a BMC password")
    value = (secret.get("data") or {}).get(PASSWORD_KEY)
    if value is None:
        raise MachineError(f"{who} has no {PASSWORD_KEY!r} key")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MachineError(f"{who}: its {PASSWORD_KEY!r} key is not base64") from None


def write_passwords(api, namespace: str, machines: list[dict], directory: Path) -> dict[str, str]:
    """Read each Secret the Machines name and write its password to `directory`/<secret>, 0600;
    remove the files of Secrets no longer named. Secret name -> file path. MachineError when a
    Secret is missing, unreadable or has no password; kube.Transient when the API does not answer."""
    wanted = named_secrets(machines)
    passwords = {}
    for name, users in wanted.items():
        if not name or not set(name) <= SAFE or name.startswith("."):
            raise MachineError(f"Machine {', '.join(users)}: bmc.passwordSecret {name!r} is not a Secret name")
        try:
            secret = kube.get(api, f"/api/v1/namespaces/{namespace}/secrets/{name}")
        except kube.Fatal as exc:
            raise MachineError(f"Machine {', '.join(users)}: bmc.passwordSecret {name!r}: {exc}") from None
        passwords[name] = password_of(secret, name, users)
    if not passwords and not directory.exists():
        return {}
    try:
        directory.mkdir(mode=0o700, parents=False, exist_ok=True)
        os.chmod(directory, 0o700)
        for name, password in passwords.items():
            atomic_write(directory / name, password, 0o600)
        for stale in directory.iterdir():
            if stale.name not in passwords:
                stale.unlink()
    except OSError as exc:
        raise MachineError(f"cannot write the BMC passwords into {directory}: {exc.strerror or exc}") from None
    return {name: str(directory / name) for name in passwords}
