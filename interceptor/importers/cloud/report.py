"""How a cloud import tells its progress and its outcome.

The progress line is rewritten in place on a terminal and left out when stderr is a file. A cloud
history has no length until its last page has come (the export files' progress bar knows its rows in
advance), so it counts pages and records instead of drawing a bar. The summaries are the export
files' (importers/summary.py), printed the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

import click

from interceptor.config import Config
from interceptor.importers.summary import Summary


class Progress:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self._shown = False

    def show(self, summary: Summary, pages: int) -> None:
        if not self.live:
            return
        self.stream.write(f"\r{summary.label} ({summary.title}): page {pages}, {summary.new} new, {summary.merged} "
                          f"merged, {summary.unchanged} unchanged, {summary.skipped} skipped\x1b[K")
        self.stream.flush()
        self._shown = True

    def done(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


def report(summaries: Sequence[Summary], config: Config, *, dry_run: bool) -> None:
    for summary in summaries:
        for line in summary.lines(dry_run=dry_run):
            click.echo(line)
    if dry_run:
        click.echo("dry run: nothing was written", err=True)
    elif config.influx.enabled:
        click.echo("queued for InfluxDB: `interceptor serve` delivers it (or run `interceptor sync influx`)", err=True)
