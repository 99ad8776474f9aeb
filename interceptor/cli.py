"""The `interceptor` command. Each subcommand is a thin call into the modules that do the work.

User-caused errors (bad config, port in use, unreadable journal) print one line saying what is wrong
and what to do, and exit non-zero; a traceback appears only with `--debug`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Iterator, Mapping
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from interceptor import __version__, runtime

if TYPE_CHECKING:  # the modules behind the commands load when a command runs: see _Commands
    from interceptor.config import Config
    from interceptor.model import Measurement
    from interceptor.pipeline import Calibration, Pipeline
    from interceptor.store.journal import Journal, Reader, Renderer
    from interceptor.store.rebuild import Rebuilt

F = TypeVar("F", bound=Callable[..., Any])
EXIT_CONFIG = 2


class UserError(click.ClickException):
    """One line for the user, exit status 1 (2 for configuration)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"interceptor: {self.format_message()}", err=True)


def common_options(command: F) -> F:
    """`--config` and `--data-dir` on every subcommand (the issue: every subcommand accepts both)."""

    @click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
                  help="TOML file (default ./interceptor.toml, then /etc/interceptor/interceptor.toml)")
    @click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
                  help="where the journal lives (overrides data_dir in the config)")
    @functools.wraps(command)
    def wrapper(*args: Any, config_path: Path | None, data_dir: Path | None, **kwargs: Any) -> Any:
        context = click.get_current_context()
        # A group's options (`export --config X garmin`) stand unless its subcommand gives its own.
        if config_path is not None or "interceptor.config_path" not in context.meta:
            context.meta["interceptor.config_path"] = config_path
        if data_dir is not None or "interceptor.overrides" not in context.meta:
            context.meta["interceptor.overrides"] = {"data_dir": str(data_dir) if data_dir else None}
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


def load(**overrides: Any) -> Config:
    """The effective config for the running subcommand, or exit 2 with the reason."""
    from interceptor.config import ConfigError, load_config

    context = click.get_current_context()
    merged = {**context.meta.get("interceptor.overrides", {}), **overrides}
    try:
        return load_config(context.meta.get("interceptor.config_path"), overrides=merged)
    except ConfigError as error:
        raise UserError(str(error), EXIT_CONFIG) from None


def open_journal(config: Config, sinks: Mapping[str, Renderer] | None = None) -> Journal:
    from interceptor.store.journal import Journal, JournalError

    path = config.data_dir / "journal.sqlite"
    if not path.exists():
        raise UserError(f"no journal at {path}: nothing has been stored yet (or pass --data-dir)")
    try:
        return Journal(path, sinks)
    except JournalError as error:
        raise UserError(str(error)) from None


@contextlib.contextmanager
def open_reader(config: Config) -> Iterator[Reader]:
    """The journal for commands that only read: no writer, nothing created or changed. A damaged
    page met while reading is told in one line, with the command that recovers the rest."""
    import sqlite3

    from interceptor.store.integrity import is_damage
    from interceptor.store.journal import JournalError, reader_of

    path = config.data_dir / "journal.sqlite"
    if not path.exists():
        raise UserError(f"no journal at {path}: nothing has been stored yet (or pass --data-dir)")
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


# Commands that live with their package; imported only when run, so that `interceptor gateway` on a
# Raspberry Pi does not load the server, and `interceptor serve` does not load the gateway.
LAZY_COMMANDS = {
    "ble": "interceptor.ble.cli:ble_group",
    "compute": "interceptor.composition.cli:compute_command",
    "dns": "interceptor.dns.cli:dns_group",
    "export": "interceptor.exporters.cli:export_command",
    "garmin": "interceptor.garmin.cli:garmin_group",
    "gateway": "interceptor.ble.cli:gateway_command",
    "import": "interceptor.importers.cli:import_group",
    "replay": "interceptor.capture.cli:replay_command",
    "xiaomi": "interceptor.importers.xiaomi.cli:xiaomi_group",
}


class _Commands(click.Group):
    """Loads package commands on demand, and gives a bug one line (and the hint to use --debug), not a
    traceback, unless --debug was given."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module, _, attribute = LAZY_COMMANDS[cmd_name].partition(":")
            command: click.Command = getattr(importlib.import_module(module), attribute)
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            if ctx.meta.get("interceptor.debug"):
                raise
            message = f"unexpected {type(error).__name__}: {error} (run with --debug for the traceback)"
            raise UserError(message) from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="interceptor")
@click.option("--debug", is_flag=True, help="verbose logs and tracebacks")
@click.pass_context
def main(context: click.Context, debug: bool) -> None:
    """Scale Interceptor: your bathroom scales, off the vendor cloud."""
    context.meta["interceptor.debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not debug:
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


@main.command()
@common_options
@click.option("--http-listen", metavar="HOST:PORT",
              help="where the emulated Withings cloud listens (default 0.0.0.0:80)")
@click.option("--web-listen", metavar="HOST:PORT",
              help="where the household page listens (default 0.0.0.0:8080)")
@click.option("--no-dns", is_flag=True, help="do not start the DNS responder")
@click.option("--query-log", is_flag=True, help="log every DNS query")
@click.option("--capture", "capture_dir", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="write every scale conversation to DIR as a pcapng file (one per connection)")
@click.option("--capture-max-files", type=click.IntRange(min=1), default=1000, show_default=True,
              help="with --capture: keep at most this many files (the oldest are removed)")
@click.option("--capture-max-bytes", type=click.IntRange(min=1), default=100_000_000, show_default=True,
              help="with --capture: keep at most this many bytes of files (the oldest are removed)")
def serve(http_listen: str | None, web_listen: str | None, no_dns: bool, query_log: bool, capture_dir: Path | None,
          capture_max_files: int, capture_max_bytes: int) -> None:
    """Run the emulated Withings cloud (and the DNS responder) until stopped."""
    from interceptor.serve import ServeError, run
    from interceptor.store.journal import JournalError

    config = load(**{"http.listen": http_listen, "web.listen": web_listen})
    capture = None
    if capture_dir is not None:
        from interceptor.capture.record import RecordingSettings

        capture = RecordingSettings(capture_dir, capture_max_files, capture_max_bytes)
    try:
        runtime.serve(run(config, with_dns=not no_dns, query_log=query_log, capture=capture))
    except (ServeError, JournalError) as error:
        raise UserError(str(error)) from None
    except KeyboardInterrupt:
        pass


@main.group()
def measurements() -> None:
    """Weigh-ins and environment readings stored in the journal."""


def parse_since(text: str | None, config: Config) -> datetime | None:
    if text is None:
        return None
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), time())
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"--since {text!r} is not a date: write YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=config.household.zone)


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [headers, *rows]]
    return "\n".join(lines)


@measurements.command("list")
@common_options
@click.option("--format", "output", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--user", help="only this person (slug), or 'unassigned'")
@click.option("--since", help="only from this date or time (YYYY-MM-DD, local time unless an offset is given)")
@click.option("--kind", type=click.Choice(["body", "environment", "all"]), default="body", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="only the newest N")
def list_measurements(output: str, user: str | None, since: str | None, kind: str, limit: int | None) -> None:
    """List stored measurements, oldest first (streamed: any length of history lists in flat memory)."""
    from interceptor.listing import Table, write_csv, write_json
    from interceptor.store.journal import Filter

    config = load()
    if user is not None and user != "unassigned" and config.person(user) is None:
        known = ", ".join(person.slug for person in config.users) or "none configured"
        raise UserError(f"--user {user!r} is not in the household ({known})")
    where = Filter(user=user, since=parse_since(since, config), kind=None if kind == "all" else kind)
    with open_reader(config) as reader:
        found = reader.measurement_rows(where, limit=limit)
        out = sys.stdout
        if output == "json":
            write_json(out, found)
        elif output == "csv":
            write_csv(out, found)
        else:
            table = Table(config.household.zone, config.household.timezone, config.household.weight_unit,
                          max((len(person.slug) for person in config.users), default=0))
            if not table.write(out, found):
                out.write("no measurements\n")


@contextlib.contextmanager
def _changing(config: Config, *user_errors: type[Exception]) -> Iterator[Pipeline]:
    """The pipeline over the journal with the configured sinks, so changes are re-delivered; a
    LookupError (or one of `user_errors`) is the user's mistake, told in one line; closed after."""
    from interceptor.pipeline import Pipeline
    from interceptor.sinks import configured_sinks

    pipeline = Pipeline(open_journal(config, configured_sinks(config)), config)
    try:
        yield pipeline
    except (LookupError, *user_errors) as error:
        raise UserError(str(error.args[0] if error.args else error)) from None
    finally:
        pipeline.journal.close()


def _revised(config: Config, change: Callable[[Pipeline], Coroutine[Any, Any, Measurement]]) -> None:
    with _changing(config) as pipeline:
        measurement = runtime.run(change(pipeline))
    click.echo(json.dumps(measurement.as_json(), indent=2))
    if config.influx.enabled:
        click.echo("queued for InfluxDB: `interceptor serve` delivers it (or run `interceptor sync influx`)", err=True)
    if config.mqtt.enabled:
        click.echo("queued for Home Assistant: `interceptor serve` publishes it", err=True)


@measurements.command("assign")
@common_options
@click.argument("measurement_id", type=int)
@click.argument("person")
def assign_measurement(measurement_id: int, person: str) -> None:
    """Attribute a weigh-in to PERSON (slug), recompute its composition, re-deliver it."""
    config = load()
    _revised(config, lambda pipeline: pipeline.assign(measurement_id, person))


@measurements.command("unassign")
@common_options
@click.argument("measurement_id", type=int)
def unassign_measurement(measurement_id: int) -> None:
    """Attribute a weigh-in to nobody (a guest), and re-deliver it."""
    config = load()
    _revised(config, lambda pipeline: pipeline.assign(measurement_id, None))


@main.command()
@common_options
@click.option("--user", "slug", required=True, help="the person whose weigh-ins to recompute")
@click.option("--since", help="only from this date (YYYY-MM-DD)")
def recompute(slug: str, since: str | None) -> None:
    """Recompute a person's body composition, e.g. after changing their height or birth date."""
    config = load()
    with _changing(config) as pipeline:
        count = runtime.run(pipeline.recompute(slug, parse_since(since, config)))
    click.echo(f"recomputed {count} weigh-in(s) of {slug}", err=True)


@main.command()
@common_options
@click.option("--user", "slug", required=True, help="the person")
@click.option("--body-fat-pct", type=float, required=True, help="what the vendor app or a DEXA scan said")
@click.option("--date", "on", help="the day of that reference weigh-in (YYYY-MM-DD); default: the latest")
def calibrate(slug: str, body_fat_pct: float, on: str | None) -> None:
    """Offset a person's body fat so a reference weigh-in reads as the vendor app or DEXA said."""
    config = load()
    try:
        day = date.fromisoformat(on) if on else None
    except ValueError:
        raise UserError(f"--date {on!r} is not a date: write YYYY-MM-DD") from None

    async def calibrate_then_recompute(pipeline: Pipeline) -> tuple[Calibration, int]:
        calibration = await pipeline.calibrate(slug, body_fat_pct, day)
        since = datetime.combine(calibration.since, time(), config.household.zone)
        return calibration, await pipeline.recompute(slug, since)

    with _changing(config, ValueError) as pipeline:
        calibration, count = runtime.run(calibrate_then_recompute(pipeline))
    click.echo(f"{slug}: body fat offset {calibration.offset_pct:+.2f} points from {calibration.since};"
               f" {count} weigh-in(s) recomputed", err=True)


@main.group()
def devices() -> None:
    """Scales and gateways that have talked to this server."""


@devices.command("list")
@common_options
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def list_devices(output: str) -> None:
    """List devices with battery, firmware and when they were last seen."""
    config = load()
    with open_reader(config) as reader:
        states = reader.devices()
    if output == "json":
        click.echo(json.dumps([state.as_json() for state in states], indent=2))
        return
    zone = config.household.zone
    rows = [[
        state.device_id, state.source, state.model or "-", state.firmware or "-",
        "-" if state.battery_pct is None else f"{state.battery_pct:g}%", state.manufacturing_id or "-",
        state.last_seen.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
    ] for state in states]
    click.echo(text_table(["device", "source", "model", "firmware", "battery", "mfgid", "last seen"], rows) if rows
               else "no devices yet")


@main.command()
@common_options
def doctor() -> None:
    """Check config, journal, ports, the DNS answer for the scale, and InfluxDB; say what to fix."""
    from interceptor.doctor import run_checks

    config = load()
    click.echo(f"ok    config: {len(config.users)} user(s), timezone {config.household.timezone}")
    checks = asyncio.run(run_checks(config))
    for check in checks:
        click.echo(check.line())
    if not all(check.ok for check in checks):
        raise SystemExit(1)


@main.group()
def sync() -> None:
    """Re-send the journal to a sink."""


@sync.command("influx")
@common_options
@click.option("--since", help="only weigh-ins from this date (YYYY-MM-DD); default: everything")
def sync_influx(since: str | None) -> None:
    """Rebuild InfluxDB from the journal (idempotent: existing points are overwritten, not doubled)."""
    from interceptor.store.influx import make_writer
    from interceptor.store.rebuild import count_points, rebuild

    config = load()
    if not config.influx.enabled:
        raise UserError("no InfluxDB configured: set [influx] url (and database, or token/org/bucket for v2)")
    since_moment = parse_since(since, config)

    async def send(reader: Reader) -> Rebuilt:
        writer = make_writer(config.influx)
        try:
            with click.progressbar(length=count_points(reader, since_moment), label="sending to InfluxDB",
                                   file=sys.stderr) as bar:
                return await rebuild(reader, writer, since=since_moment, batch_size=config.influx.batch_size,
                                     on_sent=bar.update)
        finally:
            await writer.close()

    with open_reader(config) as reader:
        result = runtime.run(send(reader))
    if result.error is not None:
        again = "run it again"
        if result.resume_from is not None:
            day = result.resume_from.astimezone(config.household.zone).date().isoformat()
            again = f"run `interceptor sync influx --since {day}` again"
        raise UserError(f"{result.error}; {result.sent} of {result.total} point(s) sent: fix that, then {again}")
    click.echo(f"sent {result.sent} point(s) to InfluxDB at {config.influx.shown_url}", err=True)


@main.group("journal")
def journal_group() -> None:
    """Check the journal, and recover what can be read from a damaged one."""


@journal_group.command("check")
@common_options
def journal_check() -> None:
    """Read every page of the journal (PRAGMA quick_check); exit 1 if it is damaged."""
    from interceptor.store.integrity import quick_check

    path = load().data_dir / "journal.sqlite"
    if not path.exists():
        raise UserError(f"no journal at {path}: nothing has been stored yet (or pass --data-dir)")
    problem = quick_check(path)
    if problem is not None:
        raise UserError(f"{path} is damaged ({problem}): stop the server and run `interceptor journal recover`")
    click.echo(f"{path}: no damage found", err=True)


@journal_group.command("recover")
@common_options
def journal_recover() -> None:
    """Copy what can be read from a damaged journal into a new one, keeping the damaged file.

    Stop `interceptor serve` first. Rows on damaged pages are lost; every other row keeps its id."""
    from interceptor.store.journal import JournalError
    from interceptor.store.recover import recover

    path = load().data_dir / "journal.sqlite"
    try:
        result = recover(path)
    except JournalError as error:
        raise UserError(str(error)) from None
    counts = ", ".join(f"{count} {table.replace('_', ' ')}" for table, count in result.rows.items())
    click.echo(f"recovered into a new {path}: {counts}", err=True)
    click.echo(f"the damaged journal is kept as {result.damaged_kept_as}", err=True)


@main.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("check")
@common_options
def config_check() -> None:
    """Validate the config and print the effective values (secrets masked)."""
    from interceptor.config import effective_config, find_config_path

    config = load()
    path = find_config_path(click.get_current_context().meta.get("interceptor.config_path"), os.environ)
    click.echo(f"config OK ({path or 'no file: defaults and environment'}); "
               f"{len(config.users)} user(s), timezone {config.household.timezone}", err=True)
    click.echo(json.dumps(effective_config(config), indent=2, default=str))



if __name__ == "__main__":
    main()
