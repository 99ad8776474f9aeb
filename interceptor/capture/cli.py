"""`interceptor replay FILE...`: a capture's scale requests against our server, judged reply by reply.

It follows `interceptor.command`: `--config`/`--data-dir`, `--format table|json|csv` (json: a line per
conversation, then a summary line; csv: a row per exchange), a dry run unless `--ingest`.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from interceptor.command import UserError, common_options, format_option, ingest_option, load

if TYPE_CHECKING:
    from interceptor.capture.replay import ClockMode, ConversationResult, ExchangeResult, Summary

EXIT_INCOMPATIBLE = 3


def _reply_text(facts: dict[str, Any] | None) -> str:
    if facts is None:
        return "-"
    framing = {"content-length": "length", "chunked": "chunked", "close": "close", "none": "empty"}[facts["framing"]]
    status = "" if facts["status"] is None else f" status {facts['status']}"
    return f"{facts['http_status']} {framing}{status}"


def _measurement_text(exchange: ExchangeResult) -> str:
    parts = []
    for measurement in exchange.measurements:
        values = " ".join(f"{name}={value:g}" for name, value in sorted(measurement.readings.items()))
        parts.append(f"{measurement.kind} {values} user={measurement.user or '-'}")
    return "; ".join(parts)


def _table_rows(result: ConversationResult) -> list[str]:
    from interceptor.capture.link import endpoint

    conversation = result.conversation
    when = datetime.fromtimestamp(conversation.started_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
    lines = [f"{result.file} #{conversation.number}  {endpoint(conversation.client)} -> "
             f"{endpoint(conversation.server)}  {when} UTC"
             f"{'' if conversation.handshake else '  (no handshake captured)'}"]
    lines.extend(f"    note: {note}" for note in conversation.notes)
    if result.not_replayed:
        lines.append(f"    not replayed: {result.not_replayed}")
    for exchange in result.exchanges:
        facts = exchange.as_json()
        verdict = {True: "ok", False: "DIFFERS", None: "not compared"}[exchange.compatible]
        request = f"{exchange.request.method} {exchange.request.target}"
        lines.append(f"  {exchange.index:>3}  {request[:40]:<40}  recorded {_reply_text(facts['recorded']):<24}"
                     f"  replayed {_reply_text(facts['replayed']):<24}  {verdict}")
        details = [exchange.error] if exchange.error else []
        details += exchange.differences + exchange.notes
        lines.extend(f"         {detail}" for detail in details if detail)
        if exchange.measurements:
            lines.append(f"         stored: {_measurement_text(exchange)}")
    return lines


CSV_COLUMNS = ["file", "conversation", "client", "server", "exchange", "request", "recorded", "replayed", "verdict",
               "measurements"]


def _csv_rows(result: ConversationResult) -> list[list[object]]:
    from interceptor.capture.link import endpoint

    conversation = result.conversation
    rows: list[list[object]] = []
    for exchange in result.exchanges:
        facts = exchange.as_json()
        rows.append([result.file, conversation.number, endpoint(conversation.client), endpoint(conversation.server),
                     exchange.index, f"{exchange.request.method} {exchange.request.target}",
                     _reply_text(facts["recorded"]), _reply_text(facts["replayed"]),
                     {True: "ok", False: "differs", None: "not compared"}[exchange.compatible],
                     len(exchange.measurements)])
    return rows


def _summary_text(summary: Summary, journal_note: str) -> str:
    return (f"{summary.files} file(s), {summary.conversations} conversation(s), {summary.exchanges} exchange(s): "
            f"{summary.compatible} compatible, {summary.incompatible} differ, {summary.not_compared} not compared; "
            f"{summary.measurements} measurement(s) stored ({journal_note})")


@click.command("replay")
@common_options
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--against", metavar="URL", help="a running server, e.g. http://127.0.0.1:8080 (default: in-process)")
@ingest_option
@click.option("--clock", "clock_mode", type=click.Choice(["capture", "now"]), default="capture", show_default=True,
              help="in-process: the server's clock is the capture's time of each request, or real time")
@format_option()
def replay_command(files: tuple[Path, ...], against: str | None, ingest: bool, clock_mode: ClockMode,
                   output: str) -> None:
    """Replay the scale requests in pcap/pcapng FILEs and say, per exchange, whether our reply is
    compatible with the recorded one (HTTP status, `status`, JSON keys and types, framing) and which
    measurements were stored. Exit status 3 when a reply differs, 1 when a file cannot be read."""
    # Imported here: `interceptor --help` and every other subcommand need neither dpkt nor the server.
    from interceptor import runtime
    from interceptor.capture.replay import Replayer, ReplayError, check_reachable, replay_files, target

    context = click.get_current_context()
    config = load()
    if not context.meta.get("interceptor.debug"):
        # The in-process server logs every request at INFO; the table already says what happened.
        logging.getLogger("interceptor").setLevel(logging.WARNING)
    if against is not None and ingest:
        raise UserError("--ingest is for the in-process server; a server given with --against stores what it gets")
    total = sum(path.stat().st_size for path in files)
    show_bar = output == "table" and sys.stderr.isatty()

    rows = csv.writer(sys.stdout, lineterminator="\n")
    if output == "csv":
        rows.writerow(CSV_COLUMNS)

    def emit(result: ConversationResult) -> None:
        if output == "json":
            click.echo(json.dumps(result.as_json()))
            return
        if output == "csv":
            rows.writerows(_csv_rows(result))
            return
        if show_bar:
            click.echo("\r\x1b[K", nl=False, err=True)  # clear the progress bar line before printing rows
        click.echo("\n".join(_table_rows(result)))

    async def run() -> tuple[Summary, str]:
        async with target(config, against=against, ingest=ingest, clock_mode=clock_mode) as where:
            await check_reachable(where.host, where.port)
            replayer = Replayer(where.host, where.port, clock=where.clock, watch=where.watch)
            with click.progressbar(length=total, label="replaying", file=sys.stderr, show_eta=False,
                                   hidden=not show_bar) as bar:
                summary = await replay_files(files, replayer, on_result=emit, on_progress=bar.update)
            return summary, where.journal_note

    try:
        summary, journal_note = runtime.run(run())
    except ReplayError as error:
        raise UserError(str(error)) from None
    if output == "json":
        click.echo(json.dumps({"summary": summary.as_json(), "journal": journal_note}))
    else:
        click.echo(_summary_text(summary, journal_note), err=output == "csv")
    for warning in summary.warnings:
        click.echo(f"interceptor: warning: {warning}", err=True)
    for error in summary.errors:
        click.echo(f"interceptor: {error}", err=True)
    if summary.errors:
        raise SystemExit(1)
    if summary.incompatible:
        raise SystemExit(EXIT_INCOMPATIBLE)
