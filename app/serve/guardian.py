"""Runs dnsmasq and dies with serve, even when serve is killed with SIGKILL.

dnsmasq drops to user `nobody`, and the kernel clears PR_SET_PDEATHSIG on that credential change, so
the signal cannot be set on dnsmasq itself. This small process stays root (its parent-death signal
survives), runs dnsmasq as its child, and stops it when serve goes away (SIGTERM from the kernel) or
asks it to. `python -m app.serve.guardian -- dnsmasq ARGS…`; it imports nothing else of the app.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
STOP_SECONDS = 5.0


def _die_with_parent(parent: int) -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass
    if os.getppid() != parent:  # serve died before the line above took effect
        sys.exit(1)


def main(argv: list[str]) -> int:
    if "--" not in argv or not argv[argv.index("--") + 1:]:
        print("usage: python -m app.serve.guardian -- COMMAND [ARGS…]", file=sys.stderr)
        return 2
    _die_with_parent(int(os.environ.get("BOOTSTRAP_GUARDIAN_PARENT", os.getppid())))
    child = subprocess.Popen(argv[argv.index("--") + 1:], stdin=subprocess.DEVNULL)

    def stop(signum, frame) -> None:
        child.terminate()
        try:
            child.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        sys.exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    print(f"guardian: dnsmasq pid {child.pid}", file=sys.stderr, flush=True)
    return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
