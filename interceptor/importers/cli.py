"""`interceptor import FILE...`: years of weigh-ins from another app's export, into the journal.

Every file is detected and read in full first: one that cannot be read stops the command with one line
naming the file (and the row) before anything is written. Then each file's weigh-ins go through the
pipeline in chunks, with a progress bar on a terminal, and a summary per file says what became new,
what was merged into weigh-ins the journal had, what was there already, and each row skipped and why.
`interceptor import xiaomi` and `import zepp` read vendor clouds instead (importers/xiaomi, zeppcloud).
"""

from __future__ import annotations

import contextlib
import mmap
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import click

from interceptor import runtime
from interceptor.command import EXIT_CONFIG, UserError, check_person, common_options, dry_run_option, load
from interceptor.config import Config
from interceptor.importers import formats, run, worker
from interceptor.importers.files import MAX_MEMBER_BYTES, Data, MappedFile, is_zip
from interceptor.importers.people import People
from interceptor.importers.records import FormatError, ReadOptions
from interceptor.importers.summary import Summary, import_all, preview_all
from interceptor.importers.xiaomi.cli import import_xiaomi_command
from interceptor.importers.zeppcloud.cli import import_zepp_command
from interceptor.pipeline import Pipeline, Preparer, calibration_texts
from interceptor.sinks import configured_sinks
from interceptor.store.journal import Journal, JournalError, reader_of

JOURNAL_FILE = "journal.sqlite"
# A CSV or JSON export read whole: larger than this is not a household's weigh-ins.
MAX_TEXT_FILE_BYTES = MAX_MEMBER_BYTES


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Data]:
    """A zip is mapped from disk (a Fitbit archive can hold gigabytes of other data); a text export
    is read whole, up to a bound."""
    try:
        with path.open("rb") as stream:
            if is_zip(stream.read(4)):
                with MappedFile(stream.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                    yield mapped
                return
            stream.seek(0)
            data = stream.read(MAX_TEXT_FILE_BYTES + 1)
    except OSError as error:
        raise UserError(f"{path}: cannot read it ({error.strerror or error})") from None
    if len(data) > MAX_TEXT_FILE_BYTES:
        raise UserError(f"{path}: over {MAX_TEXT_FILE_BYTES // (1024 * 1024)} MB of text; not an export of"
                        " weigh-ins this importer reads")
    yield data


def _password(ask: bool) -> bytes | None:
    """Asked for, never taken from the command line (it would stay in the shell's history)."""
    if not ask:
        return None
    if sys.stdin.isatty():
        text = click.prompt("zip password", hide_input=True, err=True)
    else:
        text = sys.stdin.readline().rstrip("\r\n")
    return text.encode("utf-8")


def _options(config: Config, slug: str | None, password: bytes | None, weight_unit: str | None) -> ReadOptions:
    person = config.person(slug) if slug else (config.users[0] if len(config.users) == 1 else None)
    return ReadOptions(config.household.zone, password, person.height_cm if person else None, weight_unit)


@click.command("import")
@common_options
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--format", "format_name", type=click.Choice(["auto", *formats.NAMES]), default="auto",
              show_default=True, help="the files' format; auto: told from their content")
@click.option("--user", "slug", help="whose weigh-ins (a file that does not name the person, or rows it cannot place)")
@dry_run_option
@click.option("--password", "ask_password", is_flag=True,
              help="the zip is password-protected: ask for the password (read from stdin when not a terminal)")
@click.option("--weight-unit", type=click.Choice(["kg", "lb"]),
              help="the unit of a file that does not say (openScale set to pounds; Fitbit without BMI)")
def import_command(files: tuple[Path, ...], format_name: str, slug: str | None, dry_run: bool, ask_password: bool,
                   weight_unit: str | None) -> None:
    """Import weigh-ins from Zepp Life, Withings, Mi Fitness, openScale, SmartScaleConnect or Fitbit
    exports. Importing the same file again changes nothing."""
    config = load()
    check_person(config, slug)
    options = _options(config, slug, _password(ask_password), weight_unit)
    people = People(config.users, slug)
    now = datetime.now(UTC)
    with contextlib.ExitStack() as stack:
        given = [(str(path), stack.enter_context(_opened(path))) for path in files]
        try:
            sources = run.sources(given, None if format_name == "auto" else format_name)
            _whose(config, sources, slug)
            sizes = [run.check(source, options, now) for source in sources]
        except FormatError as error:
            raise UserError(f"{error}; nothing was imported") from None
        summaries = _import(config, sources, sizes, options, people, now, dry_run)
    for summary in summaries:
        for line in summary.lines(dry_run=dry_run):
            click.echo(line)
    if dry_run:
        click.echo("dry run: nothing was written", err=True)


def _whose(config: Config, sources: list[run.Source], slug: str | None) -> None:
    """A file that does not say whose weigh-ins it holds needs `--user` in a household of several."""
    if not config.users:
        raise UserError("no people in the household: add [[users]] to the config before importing weigh-ins")
    if slug is not None or len(config.users) == 1:
        return
    for source in sources:
        if not formats.BY_NAME[source.format].names_people:
            known = ", ".join(person.slug for person in config.users)
            raise UserError(f"{source.label}: {source.title} files hold one person's weigh-ins: pass --user PERSON"
                            f" ({known})", EXIT_CONFIG)


def _import(config: Config, sources: list[run.Source], sizes: list[int], options: ReadOptions, people: People,
            now: datetime, dry_run: bool) -> list[Summary]:
    if not dry_run:
        return store_files(config, sources, sizes, options, people, now)
    path = config.data_dir / JOURNAL_FILE
    summaries = []
    pipeline = Pipeline(None, config)  # type: ignore[arg-type]  # a preview never writes
    with contextlib.ExitStack() as stack:
        reader = stack.enter_context(reader_of(path)) if path.exists() else None
        for source, size in zip(sources, sizes, strict=True):
            summary = Summary(source.label, source.title)
            with _bar(size, source.label) as bar:
                preview_all(pipeline, reader, run.items(source, options, people, now, summary), run.FILE_RULE,
                            summary, bar.update)
            summaries.append(summary)
    return summaries


def store_files(config: Config, sources: list[run.Source], sizes: list[int], options: ReadOptions, people: People,
                now: datetime) -> list[Summary]:
    """What `interceptor import` does once every file was checked: each file's weigh-ins into the
    journal, prepared by a second process where one helps (`importers.worker`); a summary per file."""
    path = config.data_dir / JOURNAL_FILE
    preparer = Preparer(config, _calibrations(config, path))
    summaries = []
    # The reading process is forked before the journal starts its writer thread.
    with worker.batches(sources, options, people, now, preparer) as batches:
        try:
            journal = Journal(path, configured_sinks(config))
        except JournalError as error:
            raise UserError(str(error)) from None
        pipeline = Pipeline(journal, config)
        try:
            for index, (source, size) in enumerate(zip(sources, sizes, strict=True)):
                summary = Summary(source.label, source.title)
                with _bar(size, source.label) as bar:
                    runtime.run(import_all(pipeline, batches.for_source(index, summary), run.FILE_RULE, summary,
                                           bar.update))
                summaries.append(summary)
        except worker.WorkerFailed as error:
            raise UserError(f"{error}\nwhat was stored before stays; importing the same files again finishes the"
                            " import") from None
        finally:
            journal.close()
    if config.influx.enabled:
        click.echo("queued for InfluxDB: `interceptor serve` delivers it (or run `interceptor sync influx`)", err=True)
    return summaries


def _calibrations(config: Config, path: Path) -> dict[str, str | None]:
    """Each person's stored calibration, read on a connection closed again before the reading process
    is forked (SQLite connections must not cross a fork)."""
    if not path.exists():
        return {}
    try:
        with reader_of(path) as reader:
            return calibration_texts(reader, [person.slug for person in config.users])
    except JournalError as error:
        raise UserError(str(error)) from None


def _bar(size: int, label: str) -> click.progressbar[int]:
    """A progress bar on a terminal (stderr); nothing otherwise."""
    return click.progressbar(length=max(size, 1), label=f"importing {label}", file=sys.stderr)


FILES = "files"


class _ImportCommands(click.Group):
    """`interceptor import xiaomi|zepp` read a vendor cloud; anything else is `import FILE...` (the
    `files` command), so export files keep their short form and the options may come first."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [FILES, *args]
        return super().parse_args(ctx, args)


@click.group("import", cls=_ImportCommands, context_settings={"help_option_names": ["-h", "--help"]})
def import_group() -> None:
    """Bring weigh-ins in: `import FILE...` (export files), `import xiaomi` (Xiaomi Home, Mi Fitness),
    `import zepp` (Zepp Life). Importing the same weigh-ins again changes nothing."""


import_group.add_command(import_command, FILES)
import_group.add_command(import_xiaomi_command)
import_group.add_command(import_zepp_command)
