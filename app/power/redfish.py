"""Redfish: a small client on the standard library (urllib) rather than OpenStack's `sushy`.

Why: powering a node takes five calls (list systems, read one, Reset, PATCH Boot), and what matters
is how they fail, which we word ourselves. urllib gives Basic auth (a header; sushy-emulator and many
BMCs offer no SessionService, so a session-login client fails there), a TLS verify toggle (an
SSLContext), timeouts, and no new dependency; sushy would add its own stack for the same five calls.
Redirects: a system addressed by name answers 307 to its UUID path. urllib follows that for GET
only, so we read the system once and then address it by the `@odata.id` it reports. The password
follows a redirect only to the same scheme, host and port: a BMC (or whoever answers in its place)
that redirects elsewhere gets no credentials sent there.
Polling is the caller's (`app.power.wait_for`): Reset returns before the state changes.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPException

from app.cluster.model import Bmc
from app.power.base import UNKNOWN, PowerStatus, Way, read_password

SYSTEMS = "/redfish/v1/Systems"
RESET = "#ComputerSystem.Reset"
TIMEOUT = 15.0
# Installed: boot from the disk from now on. "Continuous" because some BMCs (and the emulators)
# store Once as Continuous anyway; stating it keeps the override's meaning the same everywhere.
DISK = ("Hdd", "Continuous")
PXE = ("Pxe", "Once")


class _NotFound(Exception):
    pass


def base_url(address: str) -> str:
    """`https://host[:port]` from host[:port] (Redfish is https unless the URL says http)."""
    return address.rstrip("/") if "://" in address else f"https://{address}"


class Redfish(Way):
    name = "redfish"

    def __init__(self, node: str, bmc: Bmc, password: str | None = None, timeout: float = TIMEOUT):
        super().__init__(node)
        self.bmc, self.base, self.timeout = bmc, base_url(bmc.address), timeout
        self._password = password
        self._path: str | None = None
        context = ssl.create_default_context()
        if not bmc.verify_tls:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _SameOriginAuth)

    # -- the interface -----------------------------------------------------------------------------
    def on(self) -> None:
        self._reset("On")

    def off(self) -> None:
        self._reset("ForceOff")

    def status(self) -> PowerStatus:
        system = self._system()
        boot = system.get("Boot") or {}
        target, enabled = boot.get("BootSourceOverrideTarget"), boot.get("BootSourceOverrideEnabled")
        if not target or target == "None" or enabled == "Disabled":
            override = "none"
        else:
            override = f"{str(target).lower()} ({str(enabled or UNKNOWN).lower()})"
        return PowerStatus(str(system.get("PowerState") or UNKNOWN).lower(), override)

    def pxe_once(self) -> None:
        self._set_boot(*PXE)

    def boot_disk(self) -> None:
        self._set_boot(*DISK)

    def location(self) -> str:
        return f"Redfish {self.base}{self._path or ''}"

    # -- the system --------------------------------------------------------------------------------
    def _system(self) -> dict:
        if self._path is None:
            self._path = self._find_system()
        return self._get(self._path)

    def _find_system(self) -> str:
        wanted = self.bmc.system
        if wanted:
            path = wanted if wanted.startswith("/") else f"{SYSTEMS}/{wanted}"
            try:
                return str(self._get(path).get("@odata.id") or path)  # a name redirects to its UUID path
            except _NotFound:
                raise self.fail(f"BMC {self.base} has no system {path} "
                                f"(it has: {', '.join(self._members()) or 'none'})") from None
        members = self._members()
        if len(members) != 1:
            raise self.fail(f"BMC {self.base} has {len(members)} systems ({', '.join(members) or 'none'}); "
                            "set bmc.system to the one this node is")
        return members[0]

    def _members(self) -> list[str]:
        try:
            collection = self._get(SYSTEMS)
        except _NotFound:
            raise self.fail(f"{self.base} has no {SYSTEMS}: is it a Redfish service?") from None
        return [str(m.get("@odata.id")) for m in collection.get("Members", []) if isinstance(m, dict)]

    def _reset(self, kind: str) -> None:
        system = self._system()
        action = (system.get("Actions") or {}).get(RESET)
        if not isinstance(action, dict) or "target" not in action:
            raise self.fail(f"BMC {self.base} offers no ComputerSystem.Reset for {self._path}")
        allowed = action.get("ResetType@Redfish.AllowableValues")
        if allowed and kind not in allowed:
            raise self.fail(f"BMC {self.base} does not offer reset {kind} for {self._path} "
                            f"(it offers: {', '.join(map(str, allowed))})")
        self._call("POST", action["target"], {"ResetType": kind})

    def _set_boot(self, target: str, enabled: str) -> None:
        boot = self._system().get("Boot") or {}
        allowed = boot.get("BootSourceOverrideTarget@Redfish.AllowableValues")
        if allowed and target not in allowed:
            raise self.fail(f"BMC {self.base} cannot boot {self._path} from {target} "
                            f"(it offers: {', '.join(map(str, allowed))})")
        self._call("PATCH", str(self._path),
                   {"Boot": {"BootSourceOverrideTarget": target, "BootSourceOverrideEnabled": enabled}})

    # -- HTTP --------------------------------------------------------------------------------------
    def _get(self, path: str) -> dict:
        return self._call("GET", path)

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        if self._password is None:
            self._password = read_password(self.node, self.bmc)
        token = base64.b64encode(f"{self.bmc.username}:{self._password}".encode()).decode()
        request = urllib.request.Request(
            self.base + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Basic {token}", "Accept": "application/json",
                     **({"Content-Type": "application/json"} if body is not None else {})})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise self._refused(exc, method, path) from None
        except urllib.error.URLError as exc:
            raise self._unreachable(exc.reason) from None
        except (OSError, HTTPException) as exc:  # timeouts, resets, a server that is not HTTP
            raise self._unreachable(exc) from None
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise self.fail(f"BMC {self.base} answered {method} {path} with something that is not JSON") from None
        return data if isinstance(data, dict) else {}

    def _refused(self, exc: urllib.error.HTTPError, method: str, path: str) -> Exception:
        if exc.code in (401, 403):
            return self.fail(f"BMC {self.base} refused user {self.bmc.username!r} ({exc.code}): "
                             "check bmc.username and the password")
        if exc.code == 404 and method == "GET":
            return _NotFound(path)
        return self.fail(f"BMC {self.base} answered {exc.code} to {method} {path}: {_redfish_message(exc)}")

    def _unreachable(self, reason) -> Exception:
        if isinstance(reason, ssl.SSLCertVerificationError):
            return self.fail(f"the certificate of BMC {self.base} is not trusted ({reason.verify_message}); "
                             "set bmc.verify_tls: false only for a BMC with a self-signed certificate")
        if isinstance(reason, ssl.SSLError):
            return self.fail(f"no TLS session with BMC {self.base} ({reason.reason or reason}); if it serves "
                             "plain HTTP, write bmc.address as http://host:port")
        if isinstance(reason, TimeoutError):
            return self.fail(f"BMC {self.base} did not answer within {self.timeout:.0f}s")
        return self.fail(f"cannot reach BMC {self.base}: {getattr(reason, 'strerror', None) or reason}")


class _SameOriginAuth(urllib.request.HTTPRedirectHandler):
    """urllib copies every header to the redirected request; Authorization goes only where it came from."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(new.full_url) != _origin(req.full_url):
            new.remove_header("Authorization")
        return new


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme)


def _redfish_message(exc: urllib.error.HTTPError) -> str:
    """The Redfish error's own words (`error.@Message.ExtendedInfo[].Message` or `error.message`)."""
    try:
        error = json.loads(exc.read()).get("error", {})
    except (ValueError, AttributeError, OSError):
        return exc.reason or "no details"
    infos = [i.get("Message") for i in error.get("@Message.ExtendedInfo", []) if isinstance(i, dict)]
    return "; ".join(m for m in infos if m) or error.get("message") or str(exc.reason)
