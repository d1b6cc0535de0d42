"""What every command shares: the Typer app, the global options, the options several commands take,
and loading cluster.yaml with `validate`'s messages. Command modules import this; it imports none
of them.

`--config`, `--output` and `--templates` work before the command (`bootstrap-node --output o serve`)
and after it (`bootstrap-node serve --output o`): `command()` adds them to every command, and a value
given after the command wins.
"""

from __future__ import annotations

import functools
import inspect
import typing
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from app import __version__
from app.cluster import InvalidConfig, Problem, SourceError, load_cluster, render
from app.cluster.model import Cluster
from app.exitcodes import ExitCode
from app.serve.settings import Bind, Dhcp, Tftp
from app.yaml_source import Pos

app = typer.Typer(
    help="Turn a rack of powered-off bare-metal machines into a Kubernetes cluster on Flatcar.",
    no_args_is_help=True, pretty_exceptions_enable=False)


@dataclass(frozen=True)
class Paths:
    config: Path
    output: Path
    templates: Path


class Format(str, Enum):
    text = "text"
    json = "json"
    github = "github"


CONTAINER_PATHS = Paths(Path("/config/cluster.yaml"), Path("/output"), Path("/templates"))
# Outside a container (no /config, /output or /templates volume) the working directory stands in.
LOCAL_PATHS = Paths(Path("cluster.yaml"), Path("output"), Path("templates"))
ENV = {"config": "BOOTSTRAP_CONFIG", "output": "BOOTSTRAP_OUTPUT", "templates": "BOOTSTRAP_TEMPLATES"}
HELP = {"config": "cluster.yaml to read (default: /config/cluster.yaml where /config exists, else ./cluster.yaml)",
        "output": "Output directory (default: /output where it exists, else ./output)",
        "templates": "Template overrides; missing files fall back to built-ins (default: /templates where it "
                     "exists, else ./templates)"}


def default_paths() -> Paths:
    """The container's volumes where they are mounted, else the working directory's files."""
    def pick(container: Path, local: Path, volume: Path) -> Path:
        return container if volume.is_dir() else local
    return Paths(pick(CONTAINER_PATHS.config, LOCAL_PATHS.config, CONTAINER_PATHS.config.parent),
                 pick(CONTAINER_PATHS.output, LOCAL_PATHS.output, CONTAINER_PATHS.output),
                 pick(CONTAINER_PATHS.templates, LOCAL_PATHS.templates, CONTAINER_PATHS.templates))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bootstrap-node {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option(envvar=ENV["config"], help=HELP["config"],
                                                show_default=False)] = None,
    output: Annotated[Path | None, typer.Option(envvar=ENV["output"], help=HELP["output"],
                                                show_default=False)] = None,
    templates: Annotated[Path | None, typer.Option(envvar=ENV["templates"], help=HELP["templates"],
                                                   show_default=False)] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    defaults = default_paths()
    ctx.obj = Paths(config or defaults.config, output or defaults.output, templates or defaults.templates)


def _global_parameters() -> list[inspect.Parameter]:
    """--config/--output/--templates as keyword parameters a command's signature can carry."""
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                              annotation=Annotated[Path | None, typer.Option(
                                  f"--{name}", help=f"{HELP[name]} (Also accepted before the command.)")])
            for name in ENV]


def command(name: str | None = None):
    """Register a command whose first parameter is `paths: Paths`, with the global options after it."""
    def register(fn):
        signature = inspect.signature(fn)
        hints = typing.get_type_hints(fn, include_extras=True)  # annotations are strings in fn's module
        own = [p.replace(annotation=hints.get(p.name, p.annotation))
               for p in list(signature.parameters.values())[1:]]  # drop `paths`; typer gives us the context

        @functools.wraps(fn)
        def run(ctx: typer.Context, **kwargs):
            given = {key: kwargs.pop(key) for key in ENV if kwargs.get(key) is not None}
            kwargs = {key: value for key, value in kwargs.items() if key not in ENV}
            _warned.clear()  # one run of a command: each warning once
            return fn(replace(ctx.obj or default_paths(), **given), **kwargs)

        context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
        parameters = [context, *own, *_global_parameters()]
        run.__signature__ = signature.replace(parameters=parameters)
        run.__annotations__ = {p.name: p.annotation for p in parameters}  # resolved, not strings
        del run.__wrapped__  # typer must read the new signature, not the function's own
        return app.command(name)(run)
    return register


def fail(message: str, code: int = ExitCode.INVALID) -> typer.Exit:
    """Print `message` to stderr; return the Exit to raise (so callers read `raise fail(...)`)."""
    typer.echo(message, err=True)
    return typer.Exit(int(code))


def unreadable(path: Path, exc: SourceError, fmt: Format = Format.text) -> str:
    message = exc.message
    if not path.exists():
        message += (f" (pass --config FILE or set {ENV['config']}; without them the commands read "
                    f"{CONTAINER_PATHS.config} in a container, else ./{LOCAL_PATHS.config})")
    if fmt is Format.text:
        where = f"{path}:{exc.pos.line}:{exc.pos.column}" if exc.pos else str(path)
        return f"{where}: {message}"
    pos = exc.pos or Pos(1, 1)
    return render([Problem(str(path), pos.line, pos.column, "", message)], fmt.value)


def load_or_exit(path: Path) -> Cluster:
    """For commands that need a valid config: print problems like `validate` and exit 1 or 2."""
    try:
        cluster, warnings = load_cluster(path)
    except SourceError as exc:
        raise fail(unreadable(path, exc), ExitCode.UNREADABLE) from None
    except InvalidConfig as exc:
        raise fail(render(exc.problems, "text"), ExitCode.INVALID) from None
    for w in warnings:
        if w.text() not in _warned:
            _warned.add(w.text())
            typer.echo(w.text(), err=True)
    return cluster


# Several steps of one command (init: generate, serve, wait) read cluster.yaml; a warning is news once.
_warned: set[str] = set()


def known_nodes(config: Path) -> dict[str, str]:
    """MAC -> name from cluster.yaml when it is readable (commands that read the event log work
    from the log alone when it is not)."""
    try:
        cluster, _ = load_cluster(config)
    except (SourceError, InvalidConfig):
        return {}
    return {n.mac: n.name for n in cluster.nodes}


def listen_address(paths: Paths, listen: str | None) -> tuple[str, int]:
    """--listen ADDR:PORT, or bootstrap.ip and http_port from cluster.yaml."""
    if listen:
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise fail(f"--listen {listen!r}: expected ADDR:PORT, like 10.0.0.2:8080 or 0.0.0.0:8080")
        return host, int(port)
    cluster = load_or_exit(paths.config)
    return str(cluster.bootstrap.ip), cluster.bootstrap.http_port


# Options that `serve` and `init` (and `generate`, for assets) share: declared once.
ListenOpt = Annotated[str | None, typer.Option(help="ADDR:PORT for the HTTP server; default "
                                                       "bootstrap.ip:http_port from cluster.yaml.")]
DhcpOpt = Annotated[Dhcp, typer.Option(help="proxy: answer PXE next to the site's DHCP; none: no DHCP.")]
TftpOpt = Annotated[Tftp, typer.Option(help="Who serves iPXE over TFTP: dnsmasq, builtin (tftpy) or none.")]
AssetsOpt = Annotated[Path, typer.Option(envvar="BOOTSTRAP_ASSETS",
                                         help="Baked assets: Flatcar images and sysexts, served at /assets/.")]
ImagesOpt = Annotated[Path, typer.Option(
    envvar="BOOTSTRAP_IMAGES", help="OCI image layout served read-only at /v2/ (the nodes' registry mirror).")]
InstallWindowOpt = Annotated[float, typer.Option(
    help="Seconds a node's PXE boot keeps its install window open (its configs are served only inside it).")]
BindOpt = Annotated[Bind, typer.Option(
    help="How a request is tied to the machine that PXE-booted: link (its MAC in the neighbour table; nodes "
         "share this host's L2) or address (nodes behind a router or DHCP relay; weaker, see Security).")]
IpxeDirOpt = Annotated[Path, typer.Option(envvar="BOOTSTRAP_IPXE_DIR", help="Where the iPXE binaries are.")]
DEFAULT_ASSETS = Path("/assets")
DEFAULT_IPXE_DIR = Path("/usr/lib/ipxe")
DEFAULT_IMAGES = Path("/images")
