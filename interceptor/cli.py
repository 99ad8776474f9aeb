"""The `interceptor` command. Each subcommand is a thin call into the modules that do the work, and
follows the convention of `interceptor.command` (common options, formats, listen flags, errors).

User-caused errors (bad config, port in use, unreadable journal) print one line saying what is wrong
and what to do, and exit non-zero; a traceback appears only with `--debug`.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from interceptor import __version__, runtime
from interceptor.command import (
    EXIT_CONFIG,
    UserError,
    ask,
    check_person,
    common_options,
    config_source,
    format_option,
    listen_option,
    load,
    open_journal,
    open_reader,
    parse_since,
    write_records,
)
from interceptor.startup import Listener, explain_all

if TYPE_CHECKING:  # the modules behind the commands load when a command runs: see _Commands
    from interceptor.config import Config
    from interceptor.model import Measurement
    from interceptor.pipeline import Calibration, Pipeline
    from interceptor.store.journal import Reader
    from interceptor.store.rebuild import Rebuilt

# Importable from here as before (commands written against this module keep working).
__all__ = ["EXIT_CONFIG", "UserError", "ask", "common_options", "load", "main", "open_journal", "open_reader",
           "parse_since"]

# Commands that live with their package; imported only when run, so that `interceptor gateway` on a
# Raspberry Pi does not load the server, `interceptor serve` does not load the gateway, and
# `interceptor --help` loads none of them (their one-line help is written here).
LAZY_COMMANDS = {
    "ble": ("interceptor.ble.cli:ble_group", "Bluetooth scales: decode a frame, replay a capture."),
    "compute": ("interceptor.composition.cli:compute_command",
                "Print the body composition of one weigh-in, with the method and confidence of every metric."),
    "dns": ("interceptor.dns.cli:dns_group", "Run the split-horizon DNS responder alone, or print a resolver snippet."),
    "export": ("interceptor.exporters.cli:export_command",
               "Write stored weigh-ins out, for openScale, a spreadsheet or Garmin Connect."),
    "garmin": ("interceptor.garmin.cli:garmin_group",
               "Garmin Connect sign-in, per person (uploads: `interceptor export garmin`)."),
    "gateway": ("interceptor.ble.cli:gateway_command",
                "Listen to Bluetooth scales and forward their frames to the server."),
    "import": ("interceptor.importers.cli:import_group",
               "Bring weigh-ins in: export files of other apps, or the Xiaomi and Zepp clouds."),
    "replay": ("interceptor.capture.cli:replay_command",
               "Replay the scale requests of pcap/pcapng files and judge our replies."),
    "xiaomi": ("interceptor.importers.xiaomi.cli:xiaomi_group",
               "Your Xiaomi account: sign in, and your scales' Bluetooth bind keys."),
}


class _Commands(click.Group):
    """Loads package commands on demand; words every error as `interceptor: ...` (usage errors too);
    gives a bug one line (and the hint to use --debug), not a traceback, unless --debug was given;
    and leaves a pipe closed by the reader (`| head`) quiet."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module, _, attribute = LAZY_COMMANDS[cmd_name][0].partition(":")
            command: click.Command = getattr(importlib.import_module(module), attribute)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list without importing the lazy commands' modules."""
        rows = []
        for name in self.list_commands(ctx):
            if name in LAZY_COMMANDS:
                rows.append((name, LAZY_COMMANDS[name][1]))
                continue
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width - 6 - len(name))))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # a reader gone after the last write is met here, not at exit
            return result
        except click.UsageError as error:
            where = error.ctx.command_path if error.ctx is not None else "interceptor"
            raise UserError(f"{error.format_message().rstrip('.')} (see `{where} --help`)", EXIT_CONFIG) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except OSError as error:
            if error.errno == errno.EPIPE:
                _reader_gone()
            raise self._unexpected(ctx, error) from None
        except Exception as error:
            raise self._unexpected(ctx, error) from None

    @staticmethod
    def _unexpected(ctx: click.Context, error: Exception) -> Exception:
        if ctx.meta.get("interceptor.debug"):
            return error
        return UserError(f"unexpected {type(error).__name__}: {error} (run with --debug for the traceback)")


def _reader_gone() -> NoReturn:
    """The reader closed the pipe (`... | head -1`): it has what it wanted, so end quietly with
    success, as other command-line tools do on SIGPIPE. Standard output goes to /dev/null first, or
    Python's flush at exit would meet the closed pipe again and print that."""
    with contextlib.suppress(OSError, ValueError):  # no file descriptor (a test runner's stream)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    raise click.exceptions.Exit(0)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="interceptor")
@click.option("--debug", is_flag=True, help="verbose logs and tracebacks")
@click.pass_context
def main(context: click.Context, debug: bool) -> None:
    """Scale Interceptor: your bathroom scales, off the vendor cloud."""
    context.meta["interceptor.debug"] = debug
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(runtime.LineFormatter(runtime.LINE_FORMAT))
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, handlers=[handler])
    if not debug:
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


# How `serve` moves or drops each of its listeners, for start-up errors (interceptor.startup).
SERVE_LISTENERS = {
    "HTTP": Listener("--http-listen"),
    "web": Listener("--web-listen", "go without the household page (--no-web)"),
    "DNS": Listener("--dns-listen", "run without the responder (--no-dns) and send the scale here from your own"
                    " resolver (`interceptor dns snippet`)"),
    "TLS probe": Listener("--tls-probe-listen", "leave the probe off ([tls_probe] enabled = false)"),
}


@main.command()
@common_options
@listen_option("http", "the emulated Withings cloud's address, instead of [http] listen (0.0.0.0:80)")
@listen_option("web", "the household page's address, instead of [web] listen (0.0.0.0:8080)")
@listen_option("dns", "the DNS responder's address, instead of [dns] listen (0.0.0.0:53 and [::]:53)",
               multiple=True)
@listen_option("tls-probe", "turn the TLS probe on, at this address (e.g. 0.0.0.0:443)")
@click.option("--no-dns", is_flag=True, help="do not start the DNS responder")
@click.option("--no-web", is_flag=True, help="do not start the household page")
@click.option("--query-log", is_flag=True, help="log every DNS query")
@click.option("--capture", "capture_dir", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="write every scale conversation to DIR as a pcapng file (one per connection)")
@click.option("--capture-max-files", type=click.IntRange(min=1), default=1000, show_default=True,
              help="with --capture: keep at most this many files (the oldest are removed)")
@click.option("--capture-max-bytes", type=click.IntRange(min=1), default=100_000_000, show_default=True,
              help="with --capture: keep at most this many bytes of files (the oldest are removed)")
def serve(http_listen: str | None, web_listen: str | None, dns_listen: tuple[str, ...], tls_probe_listen: str | None,
          no_dns: bool, no_web: bool, query_log: bool, capture_dir: Path | None, capture_max_files: int,
          capture_max_bytes: int) -> None:
    """Run the emulated Withings cloud, the DNS responder and the household page until stopped."""
    from interceptor.config import Override
    from interceptor.serve import ServeError, StartupFailed, run
    from interceptor.store.journal import JournalError

    config = load(
        Override("http.listen", http_listen, "--http-listen"),
        Override("web.listen", web_listen, "--web-listen"),
        Override("web.enabled", False if no_web else None, "--no-web"),
        Override("dns.listen", list(dns_listen) or None, "--dns-listen"),
        Override("dns.enabled", False if no_dns else None, "--no-dns"),
        Override("tls_probe.listen", tls_probe_listen, "--tls-probe-listen"),
        Override("tls_probe.enabled", True if tls_probe_listen else None, "--tls-probe-listen"),
        announce=True,
    )
    capture = None
    if capture_dir is not None:
        from interceptor.capture.record import RecordingSettings

        capture = RecordingSettings(capture_dir, capture_max_files, capture_max_bytes)
    source = config_source()
    try:
        runtime.serve(run(config, query_log=query_log, capture=capture,
                          config_path=str(source.path) if source.path else None))
    except StartupFailed as failed:
        raise UserError(explain_all(failed.problems, SERVE_LISTENERS)) from None
    except (ServeError, JournalError) as error:
        raise UserError(str(error)) from None
    except KeyboardInterrupt:
        pass


@main.group()
def measurements() -> None:
    """Weigh-ins and environment readings stored in the journal."""


@measurements.command("list")
@common_options
@format_option()
@click.option("--user", "slug", help="only this person (slug), or 'unassigned'")
@click.option("--since", help="only from this date or time (YYYY-MM-DD, local time unless an offset is given)")
@click.option("--kind", type=click.Choice(["body", "environment", "all"]), default="body", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="only the newest N")
def list_measurements(output: str, slug: str | None, since: str | None, kind: str, limit: int | None) -> None:
    """List stored measurements, oldest first (streamed: any length of history lists in flat memory)."""
    from interceptor.listing import Table, write_csv, write_json
    from interceptor.store.journal import Filter

    config = load()
    check_person(config, slug, unassigned=True)
    where = Filter(user=slug, since=parse_since(since, config), kind=None if kind == "all" else kind)
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
    check_person(config, slug)
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
    check_person(config, slug)
    day = parse_since(on, config, "--date").date() if on else None

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


DEVICE_COLUMNS = ["device_id", "source", "model", "firmware", "battery_pct", "manufacturing_id", "first_seen",
                  "last_seen", "address", "frames", "rssi_dbm", "heard_by"]


@devices.command("list")
@common_options
@format_option()
def list_devices(output: str) -> None:
    """List devices with battery, firmware and when they were last seen."""
    config = load()
    with open_reader(config) as reader:
        states = reader.devices()
    if output != "table":
        write_records(output, DEVICE_COLUMNS, [[state.as_json()[name] for name in DEVICE_COLUMNS] for state in states])
        return
    from interceptor.listing import device_text

    zone = config.household.zone
    write_records("table", ["device", "source", "model", "firmware", "battery", "mfgid",
                            f"last seen ({config.household.timezone})"], [[
        device_text(state.device_id), state.source, state.model, state.firmware,
        None if state.battery_pct is None else f"{state.battery_pct:g}%", state.manufacturing_id,
        state.last_seen.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
    ] for state in states], empty="no devices yet")


@main.command()
@common_options
@listen_option("http", "where `serve` answers the scale, when its state file in the data dir cannot say")
@listen_option("dns", "where `serve`'s DNS responder listens, when its state file cannot say")
@click.option("--check", "only", multiple=True, metavar="NAME",
              type=click.Choice(["config", "journal", "server", "http", "dns", "scales", "influxdb", "mqtt",
                                 "garmin"]),
              help="only this check (repeatable); e.g. `--check server --check http` as a container's healthcheck")
def doctor(http_listen: str | None, dns_listen: str | None, only: tuple[str, ...]) -> None:
    """Check the config, the journal, the running server, the DNS answer for the scale, what each scale did,
    and InfluxDB; say what to fix. It changes nothing."""
    from interceptor.config import Override
    from interceptor.doctor import run_checks

    config = load(Override("http.listen", http_listen, "--http-listen"),
                  Override("dns.listen", [dns_listen] if dns_listen else None, "--dns-listen"), household=False)
    checks = runtime.run(run_checks(config, config_source(), flags={"HTTP": http_listen, "DNS": dns_listen},
                                    only=only))
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
    from interceptor.config import effective_config, household_text

    config = load(household=False)
    click.echo(f"config OK: {config_source().describe()}; household {household_text(config)}", err=True)
    click.echo(json.dumps(effective_config(config), indent=2, default=str))


if __name__ == "__main__":
    main()
