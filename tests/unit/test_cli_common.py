"""Every command's `--help` renders. Typer parses help texts as Rich markup, so a help text holding
`[/WORD]` made `--help` end in a traceback, and one holding `[word]` loses those words silently."""

from __future__ import annotations

import pytest
import typer.main
from rich.markup import RE_TAGS
from typer.testing import CliRunner

from app.cli import app


def commands(group=None, path=()):
    group = group or typer.main.get_command(app)
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


COMMANDS = list(commands())


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_renders_and_names_every_option(path, command):
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.exception or result.output
    assert "Usage:" in result.output
    for param in command.params:
        for option in param.opts:
            assert option in result.output, f"{' '.join(path)}: {option} missing from --help"


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_no_help_text_reads_as_markup(path, command):
    texts = [command.help or ""] + [getattr(param, "help", None) or "" for param in command.params]
    tags = [match.group(0) for text in texts for match in RE_TAGS.finditer(text)]
    assert tags == [], f"{' '.join(path)}: Rich would read {tags} as markup; spell them without brackets"
