"""app/serve/settings.py: one settings tree, each default defined once (the command line shows the
same ones), and the tree as the leader hands it to its other workers."""

from __future__ import annotations

import inspect
from pathlib import Path

from app.cli import init as init_command
from app.cli import serve as serve_command
from app.logs import LogFormat
from app.serve.settings import AppSettings, Bind, BootSettings, Dhcp, Limits, ServeSettings, Tftp


def test_the_tree_survives_the_trip_to_a_worker():
    settings = ServeSettings(
        output=Path("/out"), host="10.0.0.2", port=8080, dhcp=Dhcp.none, tftp=Tftp.builtin, workers=3,
        log_format=LogFormat.json,
        app=AppSettings(data_dir=Path("/out/matchbox"), assets=None, images=Path("/images"),
                        boot=BootSettings(own_tree=False, window_seconds=60.0, bind=Bind.address),
                        limits=Limits(per_address=8)))
    back = ServeSettings.from_json(settings.to_json())
    assert back == settings
    assert isinstance(back.app.images, Path) and back.app.boot.bind is Bind.address and back.tftp is Tftp.builtin


def default(command, name):
    annotation = inspect.signature(command).parameters[name]
    return annotation.default


def test_the_command_lines_defaults_are_the_settings_defaults():
    boot, limits = BootSettings(), Limits()
    assert default(serve_command.serve, "install_window") == boot.window_seconds
    assert default(serve_command.serve, "bind") == boot.bind
    assert default(serve_command.serve, "strict_matchbox") == boot.strict_matchbox
    assert default(serve_command.serve, "idle_timeout") == limits.idle_seconds
    assert default(serve_command.serve, "max_connections") == limits.max_connections
    assert default(serve_command.serve, "max_per_client") == limits.per_address
    assert default(init_command.init, "bind") == boot.bind and default(init_command.init, "dhcp") == Dhcp.proxy
