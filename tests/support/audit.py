"""What the real kube-apiserver of tests/support/control_plane.py was asked, from its own audit log.

The tests that moved off the API-server stand-in still need to say which objects `wait` or `generate`
applied or created, in which order, and that a re-run wrote nothing: the real server's audit log
(`--audit-log-path`, a policy that keeps only the appliance's own user) records each request. The
flags only record; they change nothing the server decides.

Each request is logged twice: at RequestReceived, written before the server handles it (the log
backend writes synchronously), so every request a finished command made is in the log; and at
ResponseComplete, with the status code, which may land a moment after the client has its answer —
`Audit.since` polls until each request has both (with a deadline).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from app import pki

# Only the appliance's own credentials: its admin certificate (credentials/admin.kubeconfig), and its
# ServiceAccount in the namespaces the tests pivot into (cluster mode in a pod acts as that account).
# kubeadm's, the tests' kubectl and the control plane's components stay out of the log.
SERVICE_ACCOUNT_NAMESPACES = ("bootstrap-node", "in-pod")


def service_account_user(namespace: str) -> str:
    return f"system:serviceaccount:{namespace}:bootstrap-node"


USERS = [pki.ADMIN_USER, *map(service_account_user, SERVICE_ACCOUNT_NAMESPACES)]
POLICY = f"""apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [ResponseStarted]
rules:
  - level: Metadata
    users: {json.dumps(USERS)}
  - level: None
"""
COMPLETE_DEADLINE = 30.0


@dataclass(frozen=True)
class Request:
    verb: str  # the API verb: get, list, create, update, patch, ...
    path: str  # the request path, without the query
    query: dict[str, list[str]]
    code: int  # the response status
    impersonated: str = ""  # the user the request was made as (Impersonate-User), if any
    causes: tuple[str, ...] = ()  # a refusal's causes (an admission policy's denial is one)
    user: str = ""  # who asked, as the server authenticated it

    @property
    def applied(self) -> bool:
        """A successful server-side apply (PATCH application/apply-patch+yaml carries fieldManager)."""
        return self.verb == "patch" and "fieldManager" in self.query and self.code < 300

    @property
    def wrote(self) -> bool:
        return self.verb in ("create", "update", "patch", "delete") and self.code < 300


@dataclass
class Audit:
    log: Path

    def flags(self, policy: Path) -> list[str]:
        policy.write_text(POLICY)
        return [f"--audit-policy-file={policy}", f"--audit-log-path={self.log}", "--audit-log-format=json",
                "--audit-log-mode=blocking", "--audit-log-maxbackup=0"]

    def mark(self) -> int:
        """Where the log ends now: pass it to `since` for the requests made after this point."""
        return self.log.stat().st_size if self.log.exists() else 0

    def since(self, mark: int, users: tuple[str, ...] = (pki.ADMIN_USER,)) -> list[Request]:
        """The requests of `users` (default: the admin certificate's) logged after `mark`, in the order
        the server received them. A watch still open has no ResponseComplete yet and is left out
        (it was not refused: a refused one completes at once)."""
        deadline = time.monotonic() + COMPLETE_DEADLINE
        while True:
            received, completed = self._read(mark)
            pending = [a for a, verb in received if verb != "watch" and a not in completed]
            if not pending:
                return [completed[a] for a, _ in received if a in completed and completed[a].user in users]
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(pending)} request(s) never completed in {self.log}")
            time.sleep(0.1)

    def _read(self, mark: int) -> tuple[list[tuple[str, str]], dict[str, Request]]:
        with self.log.open("rb") as f:
            f.seek(mark)
            lines = f.read().splitlines()
        received: list[tuple[str, str]] = []  # (audit ID, verb)
        completed: dict[str, Request] = {}
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line still being written
            if event["stage"] == "RequestReceived":
                received.append((event["auditID"], event["verb"]))
            elif event["stage"] == "ResponseComplete":
                url = urlsplit(event["requestURI"])
                status = event.get("responseStatus", {})
                causes = tuple(c.get("message", "") for c in (status.get("details") or {}).get("causes") or [])
                completed[event["auditID"]] = Request(event["verb"], url.path, parse_qs(url.query),
                                                      status.get("code", 0),
                                                      (event.get("impersonatedUser") or {}).get("username", ""),
                                                      causes,
                                                      event.get("user", {}).get("username", ""))
        return received, completed
