"""Runs dnsmasq and dies with serve, even when serve is killed with SIGKILL.

dnsmasq drops to user `nobody`, and the kernel clears PR_SET_PDEATHSIG on that credential change, so
the signal cannot be set on dnsmasq itself. This small process stays root (its parent-death signal
survives), runs dnsmasq as its child, and stops it when serve goes away (SIGTERM from the kernel) or
asks it to. `python -m app.serve.supervise.guardian -- dnsmasq ARGS…`; it imports nothing else of the app.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
STOP_SECONDS = 5  # seconds dnsmasq gets to exit before SIGKILL


def die_with_parent(parent: int) -> None:
    """SIGTERM when `parent` goes away, however it goes; exit at once if it is gone already."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass
    if os.getppid() != parent:  # serve died before the line above took effect
        sys.exit(1)


def main(argv: list[str]) -> int:
    if "--" not in argv or not argv[argv.index("--") + 1:]:
        print("usage: python -m app.serve.supervise.guardian -- COMMAND [ARGS…]", file=sys.stderr)
        return 2
    die_with_parent(int(os.environ.get("BOOTSTRAP_GUARDIAN_PARENT", os.getppid())))
    child = subprocess.Popen(argv[argv.index("--") + 1:], stdin=subprocess.DEVNULL)

    stopped_by: list[int] = []

    def stop(signum, frame) -> None:
        # Only signal here: the main thread is inside child.wait(), and waiting again from a signal
        # handler would deadlock on Popen's wait lock. SIGALRM escalates if dnsmasq does not exit.
        stopped_by.append(signum)
        child.terminate()
        signal.alarm(STOP_SECONDS)

    signal.signal(signal.SIGALRM, lambda signum, frame: child.kill())
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    # One write of the whole line: the child shares the pipe, and two writes (print's text, then its
    # newline) let the child's first line land between them.
    os.write(2, f"guardian: {os.path.basename(argv[argv.index('--') + 1])} pid {child.pid}\n".encode())
    code = child.wait()
    return 128 + stopped_by[0] if stopped_by else code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
