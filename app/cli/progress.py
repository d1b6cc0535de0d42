"""How `wait` and `init` show progress: a live table on a terminal, one plain line per change
otherwise (a CI log gets each change once, not the whole table on every refresh)."""

from __future__ import annotations

import sys

import typer

HEADERS = ["node", "role", "phase (events)", "API", "last error"]


class Progress:
    def __init__(self) -> None:
        self.live = None
        self.last: dict[str, list[str]] = {}
        if sys.stdout.isatty():
            from rich.live import Live
            self.live = Live(self._table([]), refresh_per_second=2, transient=False)

    def __enter__(self):
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.live.__exit__(*exc)

    @staticmethod
    def _table(rows):
        from rich.table import Table
        from rich.text import Text
        table = Table(*HEADERS, title="bootstrap-node wait")
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))  # text from the network is never markup
        return table

    def __call__(self, rows: list[list[str]]) -> None:
        if self.live:
            self.live.update(self._table(rows))
            return
        for row in rows:
            if self.last.get(row[0]) != row:
                self.last[row[0]] = row
                typer.echo(f"{row[0]}: phase {row[2]}, API {row[3]}" + (f", error: {row[4]}" if row[4] else ""))
