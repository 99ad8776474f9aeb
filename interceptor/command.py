"""The convention every `interceptor` command follows, in one place, so a new command adopts it with a
decorator or a call:

- `@common_options`: `--config FILE` and `--data-dir DIR` on every command; `load()` reads the config
  with them (and the command's own flags, as `Override`s, so a bad value is blamed on its flag).
- `@format_option()`: `--format table|json|csv` for every command that prints records;
  `write_records` prints them in that format (`export` and `import` name file formats instead).
- `@ingest_option` (checks that may store: nothing is written unless `--ingest`) and `@dry_run_option`
  (imports: everything is written unless `--dry-run`).
- listen flags are `--<listener>-listen HOST:PORT` (`--http-listen`, `--dns-listen`, `--web-listen`,
  `--tls-probe-listen`), worded in start-up errors by `interceptor.startup`.
- errors: `UserError` prints `interceptor: <what is wrong and what to do>` on stderr, one line per
  problem, exit 1 (2 for configuration and usage); the root command words usage errors the same way
  and leaves a closed pipe (`... | head`) quiet.

Only click and the standard library at the top: `interceptor --help` and the gateway import this.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from interceptor.config import Config, ConfigSource, Override
    from interceptor.store.journal import Journal, Reader, Renderer

F = TypeVar("F", bound=Callable[..., Any])
EXIT_FAILURE = 1
EXIT_CONFIG = 2  # a configuration or a command line the user must fix
FORMATS = ("table", "json", "csv")

log = logging.getLogger("interceptor.config")


class UserError(click.ClickException):
    """What is wrong and what to do, as `interceptor: ...` on stderr: a line per problem (indented
    lines continue the problem above them)."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        for line in self.format_message().splitlines():
            click.echo(line if line.startswith(" ") else f"interceptor: {line}", err=True)


def common_options(command: F) -> F:
    """`--config` and `--data-dir`, on every command."""

    @click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
                  help="TOML file (default $INTERCEPTOR_CONFIG, ./interceptor.toml, /etc/interceptor/interceptor.toml)")
    @click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
                  help="where the journal lives (overrides data_dir in the config)")
    @functools.wraps(command)
    def wrapper(*args: Any, config_path: Path | None, data_dir: Path | None, **kwargs: Any) -> Any:
        meta = click.get_current_context().meta  # shared by a group and its subcommand
        for key, value in (("interceptor.config_path", config_path), ("interceptor.data_dir", data_dir)):
            if value is not None or key not in meta:  # `dns --config X snippet` keeps the group's X
                meta[key] = value
        return command(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def ask(question: str, *, secret: bool = False) -> str:
    """A prompt on a terminal; one line of standard input otherwise (getpass would read /dev/tty)."""
    if sys.stdin.isatty():
        return str(click.prompt(question, hide_input=secret))
    click.echo(f"{question}: ", err=True, nl=False)
    line = sys.stdin.readline()
    if not line:
        raise UserError(f"{question}: nothing on standard input (run this at a terminal, or pipe the answer in)")
    click.echo("(read from standard input)", err=True)
    return line.rstrip("\r\n")


def load(*overrides: Override, announce: bool = False, household: bool = True) -> Config:
    """The effective config for the running command, or exit 2 naming the file, variable or flag to fix.

    `announce`: log which file (and household) is in use, for the long-running commands. A command
    that works with the `household` warns when it has nobody and found no file (the sign of a command
    run from another directory); one that announces warns whenever it has nobody.
    """
    from interceptor.config import ConfigError, Override, household_text, read_config

    meta = click.get_current_context().meta
    data_dir = meta.get("interceptor.data_dir")
    flags = [Override("data_dir", str(data_dir) if data_dir else None, "--data-dir"), *overrides]
    try:
        loaded = read_config(meta.get("interceptor.config_path"), overrides=flags)
    except ConfigError as error:
        raise UserError(str(error), EXIT_CONFIG) from None
    config, source = loaded.config, loaded.source
    meta["interceptor.config_source"] = source
    if announce:
        people = f"; household {household_text(config)}" if household else ""
        log.info("config: %s%s; data in %s", source.describe(), people, config.data_dir.absolute())
        if household and not config.users:
            log.warning("%s", no_household(source))
    elif household and source.path is None and not config.users:
        click.echo(f"interceptor: warning: {no_household(source)}", err=True)
    return config


def no_household(source: ConfigSource) -> str:
    where = "no config file was found" if source.path is None else f"{source.path} has no [[users]]"
    return (f"{where}, so nobody is in the household and weigh-ins are stored for nobody: pass --config FILE,"
            " or add [[users]] (interceptor.example.toml shows how)")


def config_source() -> ConfigSource:
    """Where `load()` found the config of the running command."""
    source: ConfigSource = click.get_current_context().meta["interceptor.config_source"]
    return source


def format_option(*choices: str, default: str = "table") -> Callable[[F], F]:
    """`--format`, from `table|json|csv` (a command may offer fewer, never other names)."""
    offered = choices or FORMATS
    assert set(offered) <= set(FORMATS), offered
    return click.option("--format", "output", type=click.Choice(offered), default=default, show_default=True,
                        help="table: for reading; json and csv: for programs and spreadsheets")


def listen_option(listener: str, help: str, *, multiple: bool = False) -> Callable[[F], F]:
    """`--<listener>-listen HOST:PORT`, the one name for a listener's address on every command."""
    return click.option(f"--{listener}-listen", f"{listener.replace('-', '_')}_listen", metavar="HOST:PORT",
                        multiple=multiple, help=help + (" (repeatable)" if multiple else ""))


ingest_option = click.option(
    "--ingest", is_flag=True, help="store what it finds in the journal (default: a dry run that stores nothing)")
dry_run_option = click.option("--dry-run", is_flag=True, help="say what would be stored; write nothing")


def write_records(output: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
                  out: IO[str] | None = None, empty: str = "") -> int:
    """Records in the chosen format: an aligned table, a JSON array of objects, or CSV with a header.
    JSON and CSV are written as the rows come; a table measures its columns first (small outputs)."""
    out = out or sys.stdout
    count = 0
    if output == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if cell is None else cell for cell in row])
            count += 1
        return count
    if output == "json":
        for row in rows:
            item = json.dumps(dict(zip(columns, row, strict=True)), ensure_ascii=False, default=str)
            out.write(("[\n" if count == 0 else ",\n") + item)
            count += 1
        out.write("\n]\n" if count else "[]\n")
        return count
    cells = [["-" if cell is None else str(cell) for cell in row] for row in rows]
    if not cells:
        if empty:
            out.write(empty + "\n")
        return 0
    out.write(text_table(list(columns), cells) + "\n")
    return len(cells)


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in [headers, *rows])


def parse_since(text: str | None, config: Config, flag: str = "--since") -> datetime | None:
    """A date or a time as the user writes it, in the household's zone unless it has an offset."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), time())
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"{flag} {text!r} is not a date: write YYYY-MM-DD or YYYY-MM-DDTHH:MM", EXIT_CONFIG) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=config.household.zone)


def person_option(required: bool = False, help: str = "only this person (slug)") -> Callable[[F], F]:
    return click.option("--user", "slug", required=required, help=help)


def check_person(config: Config, slug: str | None, *, unassigned: bool = False) -> None:
    """`--user` must name someone in the household (or 'unassigned', where the command allows it)."""
    if slug is None or (unassigned and slug == "unassigned") or config.person(slug) is not None:
        return
    known = ", ".join(person.slug for person in config.users) or "none configured"
    raise UserError(f"--user {slug!r} is not in the household ({known})", EXIT_CONFIG)


def journal_path(config: Config) -> Path:
    path = config.data_dir / "journal.sqlite"
    if not path.exists():
        raise UserError(f"no journal at {path}: nothing has been stored yet (or pass --data-dir)")
    return path


def open_journal(config: Config, sinks: dict[str, Renderer] | None = None) -> Journal:
    from interceptor.store.journal import Journal, JournalError

    try:
        return Journal(journal_path(config), sinks)
    except JournalError as error:
        raise UserError(str(error)) from None


@contextlib.contextmanager
def open_reader(config: Config) -> Iterator[Reader]:
    """The journal for commands that only read: no writer, nothing created or changed. A damaged
    page met while reading is told in one line, with the command that recovers the rest."""
    import sqlite3

    from interceptor.store.integrity import is_damage
    from interceptor.store.journal import JournalError, reader_of

    path = journal_path(config)
    try:
        with reader_of(path) as reader:
            yield reader
    except JournalError as error:
        raise UserError(str(error)) from None
    except sqlite3.DatabaseError as error:
        if not is_damage(error):
            raise
        raise UserError(f"{path} is damaged ({error}): stop the server and run `interceptor journal recover`,"
                        " which copies what can be read into a new journal") from None
