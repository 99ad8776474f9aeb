"""`interceptor export`: a household's weigh-ins as openScale CSV, the vocabulary's CSV or JSON, or
Garmin FIT files; `interceptor export garmin` uploads them to Garmin Connect (`garmin.cli`). Rows
stream from the journal's own read connection: nothing is held but the row being written (and, for
FIT, one file's 200 weigh-ins)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import click

from interceptor.command import EXIT_CONFIG, UserError, check_person, common_options, load, open_reader, parse_since
from interceptor.config import Config
from interceptor.exporters import fit, openscale
from interceptor.listing import write_csv, write_json
from interceptor.store.journal import Filter

FORMATS = ("openscale", "csv", "json", "fit")
# Formats whose file is one person's (openScale imports one file per user; a Garmin account is one person).
ONE_PERSON = {"openscale", "fit", "garmin"}


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    if path is None or str(path) == "-":
        yield sys.stdout
        return
    try:
        with path.open("w", encoding="utf-8", newline="") as stream:
            yield stream
    except OSError as error:
        raise UserError(f"{path}: cannot write it ({error.strerror or error})") from None


def person_for(config: Config, slug: str | None, output: str) -> str | None:
    """The person `--user` names (checked), or the only one for a one-person format."""
    if slug is not None:
        check_person(config, slug)
        return slug
    if output in ONE_PERSON:
        if len(config.users) == 1:
            return config.users[0].slug
        raise UserError(f"{output} takes one person's weigh-ins: pass --user PERSON", EXIT_CONFIG)
    return None


def _write_fit(config: Config, where: Filter, slug: str, directory: Path) -> list[tuple[Path, int]]:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{directory}: cannot create it ({error.strerror or error})") from None
    written = []
    with open_reader(config) as reader:
        for number, (data, batch) in enumerate(fit.files(reader.measurements(where), datetime.now(UTC)), start=1):
            path = directory / f"{slug}-weight-{number:03d}.fit"
            try:
                path.write_bytes(data)
            except OSError as error:
                raise UserError(f"{path}: cannot write it ({error.strerror or error})") from None
            written.append((path, len(batch)))
    return written


class _ExportGroup(click.Group):
    """`export --format ...` writes files; `export garmin` (loaded only when asked for) uploads."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return ["garmin"]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name != "garmin":
            return None
        from interceptor.garmin.cli import export_garmin

        return export_garmin


@click.group("export", cls=_ExportGroup, invoke_without_command=True)
@common_options
@click.option("--format", "output", type=click.Choice(FORMATS),
              help="openscale: openScale's CSV; csv/json: every value under the vocabulary's names; fit: Garmin FIT")
@click.option("--user", "slug", help="only this person's weigh-ins (needed for openscale and fit)")
@click.option("--since", help="only from this date or time (YYYY-MM-DD, local time unless an offset is given)")
@click.option("-o", "--output", "path", type=click.Path(path_type=Path),
              help="the file to write (default: standard output); for fit, the directory (default: .)")
@click.pass_context
def export_command(context: click.Context, output: str | None, slug: str | None, since: str | None,
                   path: Path | None) -> None:
    """Write stored weigh-ins out, oldest first, for openScale, a spreadsheet or Garmin Connect
    (`export garmin --user PERSON` uploads them there)."""
    if context.invoked_subcommand is not None:
        if output or slug or since or path:
            raise UserError(f"put the options after `export {context.invoked_subcommand}`")
        return
    if output is None:
        raise UserError(f"say what to write: --format {'|'.join(FORMATS)} (or `export garmin` to upload)")
    config = load()
    slug = person_for(config, slug, output)
    where = Filter(user=slug, since=parse_since(since, config), kind="body")
    if output == "fit":
        written = _write_fit(config, where, slug or "", path or Path("."))
        for file_path, count in written:
            click.echo(f"{file_path}: {count} weigh-in(s)")
        if not written:
            click.echo("no weigh-ins to export", err=True)
        return
    with open_reader(config) as reader, _output(path) as out:
        if output == "openscale":
            count = openscale.write(out, reader.measurements(where), config.household.zone)
        elif output == "csv":
            count = write_csv(out, reader.measurement_rows(where))
        else:
            count = write_json(out, reader.measurement_rows(where))
    click.echo(f"exported {count} weigh-in(s)", err=True)
