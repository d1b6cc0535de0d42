"""The built-in TFTP server (tftpy, in a thread), for sites whose own DHCP points at us (`--dhcp none`)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from app.serve.errors import ServeError

log = logging.getLogger("bootstrap_node.serve")


class BuiltinTftp:
    def __init__(self, root: Path, host: str, port: int):
        import tftpy

        if not root.is_dir():
            raise ServeError(f"{root} not found: generate copies the iPXE binaries there (see --ipxe-dir)")
        self.server = tftpy.TftpServer(str(root))
        self.host, self.port = host, port
        self.thread = threading.Thread(target=self._run, name="tftp", daemon=True)

    def _run(self) -> None:
        try:
            self.server.listen(self.host, self.port)
        except Exception as exc:  # noqa: BLE001 - logged, not lost in a thread
            log.error("built-in TFTP server stopped: %s", exc)

    def start(self) -> None:
        logging.getLogger("tftpy").setLevel(logging.WARNING)
        self.thread.start()

    def stop(self) -> None:
        self.server.stop(now=True)
        self.thread.join(timeout=5)
