"""`interceptor gateway` and `interceptor ble decode|replay`.

The gateway runs for months on a Raspberry Pi next to the scale, so it must stay small: the
`interceptor` command loads a command's modules only when it runs (`interceptor.cli.LAZY_COMMANDS`),
this module imports nothing heavy at the top, and the gateway reads a config file only when one is
named (`--config` or `$INTERCEPTOR_CONFIG`: its [ble] token and bind keys), so the gateway process
holds the gateway's modules and not the server's (docs/benchmarks.md has its RSS).

Every command here follows `interceptor.command`: `--config`/`--data-dir`, `--key MAC=KEY`,
`--format table|json|csv`, a dry run unless `--ingest`, errors as one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import tempfile
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from interceptor import __version__, runtime
from interceptor.command import (
    EXIT_CONFIG,
    UserError,
    common_options,
    format_option,
    ingest_option,
    load,
    write_records,
)
from interceptor.environment import CONFIG_VARIABLE, GATEWAY_SERVER_VARIABLE, GATEWAY_TOKEN_VARIABLE
from interceptor.paths import default_data_dir

if TYPE_CHECKING:
    from interceptor.config import Config

T = TypeVar("T")
REPLAY_BATCH = 500

log = logging.getLogger(__name__)

key_option = click.option("--key", "keys", multiple=True, metavar="MAC=KEY",
                          help="an S400/S200 bind key, for its MAC (repeatable; default: [ble.devices] of --config)")


def _parse_keys(pairs: tuple[str, ...], config: Config | None) -> dict[str, bytes]:
    """`--key MAC=KEY` pairs over the config's bind keys. A key is never repeated in a message."""
    from interceptor.ble.frames import FrameError, normalise_mac
    from interceptor.ble.settings import parse_bind_key

    keys = {} if config is None else {mac: key for mac, device in config.ble.devices.items()
                                      if (key := device.key_bytes) is not None}
    for pair in pairs:
        mac, separator, key = pair.partition("=")
        if not separator:
            raise UserError("--key takes MAC=KEY, e.g. --key 8C:D0:B2:F6:BE:EF=0728974d...", EXIT_CONFIG)
        try:
            keys[normalise_mac(mac)] = parse_bind_key(key)
        except (FrameError, ValueError) as error:
            raise UserError(f"--key {mac}: {error}", EXIT_CONFIG) from None
    return keys


def _named_config() -> Config | None:
    """The config when one is named: the gateway and `ble decode` do without one (and without pydantic)."""
    if click.get_current_context().meta.get("interceptor.config_path") or os.environ.get(CONFIG_VARIABLE):
        return load(household=False)
    return None


async def until_stopped(work: Coroutine[Any, Any, T]) -> T | None:
    """`work` until it ends or SIGINT/SIGTERM arrive; then it is cancelled and cleans up (the gateway
    writes what it holds to its spool). Handlers are installed here because a process started in the
    background by a shell inherits an ignored SIGINT, and SIGTERM would otherwise end it on the spot."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        log.info("gateway: stopped")
        return None
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


@click.command("gateway", context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.option("--server", metavar="URL", envvar=GATEWAY_SERVER_VARIABLE,
              help=f"the interceptor server, e.g. http://192.168.1.10 (env {GATEWAY_SERVER_VARIABLE})")
@click.option("--token-file", type=click.Path(path_type=Path, dir_okay=False),
              help=f"file holding the server's [ble] token (or set {GATEWAY_TOKEN_VARIABLE}, or [ble] token in"
                   " --config; never on the command line)")
@click.option("--adapter", metavar="NAME", help="Bluetooth adapter, e.g. hci1 (default: the system's)")
@click.option("--listen-only", is_flag=True, help="send nothing: print every scale frame heard, decoded, as JSON")
@key_option
@click.option("--from-file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="replay frames from a btsnoop capture or a JSON-lines file instead of scanning")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="with --from-file: frames per second")
@click.option("--loop", is_flag=True, help="with --from-file: repeat forever, stamping frames with the current time")
@click.option("--spool-max", type=click.IntRange(min=100), default=200_000, show_default=True,
              help="frames kept while the server is unreachable; beyond it the oldest go")
@click.option("--max-retry", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="longest pause in seconds between attempts to reach the server")
@click.option("--name", metavar="NAME",
              help="this gateway's name on the server's Devices page and in Home Assistant"
                   " (default: [ble] gateway_name of --config, else the host name)")
def gateway_command(server: str | None, token_file: Path | None, adapter: str | None, listen_only: bool,
                    keys: tuple[str, ...], from_file: Path | None, rate: float | None, loop: bool, spool_max: int,
                    max_retry: float, name: str | None) -> None:
    """Listen to Bluetooth scales and forward their frames to the server (runs until stopped).
    --data-dir holds the spool (default $XDG_DATA_HOME/interceptor, or the config's data_dir)."""
    from interceptor.ble.sources import BleakSource, FileSource, FrameSource, SourceError

    config = _named_config()
    data_dir = click.get_current_context().meta.get("interceptor.data_dir")
    source: FrameSource = FileSource(from_file, rate, loop) if from_file else BleakSource(adapter)
    try:
        if listen_only:
            asyncio.run(until_stopped(_listen(source, _parse_keys(keys, config))))
            return
        options = _gateway_options(server, _token(token_file, config),
                                   data_dir or (config.data_dir if config else default_data_dir()), spool_max,
                                   max_retry)
        options.name = _gateway_name(name, config)
        options.version = __version__
        from interceptor.ble.gateway import Gateway

        gateway = Gateway(options)
        # asyncio's own loop: uvloop would cost the small box ~2 MB for throughput it does not need.
        asyncio.run(until_stopped(gateway.run(source)))
        log.info("gateway: %d frame(s) sent, %d refused, %d left in the spool", gateway.sent, gateway.rejected,
                 gateway.spooled)
    except SourceError as error:
        raise UserError(str(error)) from None


def _token(token_file: Path | None, config: Config | None) -> str:
    if token_file is not None:
        try:
            return token_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise UserError(f"cannot read --token-file {token_file}: {error.strerror or error}") from None
    token = os.environ.get(GATEWAY_TOKEN_VARIABLE, "").strip()
    if not token and config is not None and config.ble.token is not None:
        token = config.ble.token.get_secret_value()
    if not token:
        raise UserError(f"no token: pass --token-file FILE, set {GATEWAY_TOKEN_VARIABLE}, or --config a file with"
                        " [ble] token (the server's)")
    return token


def _gateway_name(given: str | None, config: Config | None) -> str:
    """`--name`, else the config's `[ble] gateway_name`, else the host name: how the server tells
    gateways apart (interceptor/ble/gateways.py sets the limits checked here)."""
    from interceptor.ble.gateways import MAX_NAME

    name = given or (config.ble.gateway_name if config is not None else None) or socket.gethostname()[:MAX_NAME]
    if not 0 < len(name) <= MAX_NAME or not name.isprintable():
        raise UserError(f"--name {name!r}: write 1 to {MAX_NAME} printable characters", EXIT_CONFIG)
    return name


def _gateway_options(server: str | None, token: str, data_dir: Path, spool_max: int, max_retry: float) -> Any:
    from interceptor.ble.gateway import GatewayOptions

    if not server:
        raise UserError("--server is needed, e.g. --server http://192.168.1.10 (or use --listen-only)")
    if not server.startswith(("http://", "https://")):
        raise UserError(f"--server {server!r} is not an http(s) URL; write e.g. http://192.168.1.10", EXIT_CONFIG)
    return GatewayOptions(server, token, data_dir, spool_max, max_retry)


async def _listen(source: Any, keys: dict[str, bytes]) -> None:
    """Setup help: is the scale in range, and does the key work? One JSON line per scale frame."""
    from interceptor.ble.decode import decode_frame, describe

    async for frame in source.frames():
        decoded = decode_frame(frame, keys.get)
        if decoded is None or not (decoded.samples or decoded.errors):  # another Xiaomi device on 0xFE95
            continue
        line = {"time": frame.to_json()["time"], "mac": frame.mac, "rssi": frame.rssi, "name": frame.name,
                "service_data": {uuid: data.hex() for uuid, data in frame.service_data.items()},
                "decoded": [describe(sample) for sample in decoded.samples],
                "errors": [str(error) for error in decoded.errors]}
        click.echo(json.dumps(line))


@click.group("ble")
def ble_group() -> None:
    """Bluetooth scales: decode a frame, replay a capture."""


def _columns(items: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(name for item in items for name in item))


@ble_group.command("decode")
@common_options
@click.option("--uuid", required=True, help="service-data UUID: 181d (Mi Scale), 181b (Mi Scale 2), fe95 (S400/S200)")
@click.option("--data", required=True, metavar="HEX", help="the service data after the UUID")
@click.option("--mac", help="the scale's address (needed for fe95)")
@key_option
@format_option()
def decode_command(uuid: str, data: str, mac: str | None, keys: tuple[str, ...], output: str) -> None:
    """Decode one frame: what the scale said, sample by sample."""
    from interceptor.ble.decode import decode_hex
    from interceptor.ble.errors import DecodeError
    from interceptor.ble.frames import FrameError, normalise_mac, parse_hex

    known = _parse_keys(keys, _named_config())
    try:
        key = known.get(normalise_mac(mac)) if mac else None
        decoded = decode_hex(uuid, parse_hex(data, "--data"), mac, key)
    except (DecodeError, FrameError) as error:
        raise UserError(str(error)) from None
    columns = _columns(decoded)
    write_records(output, columns, [[item.get(name) for name in columns] for item in decoded],
                  empty="no sample in this frame")


REPLAY_COLUMNS = ["id", "taken_at", "device_id", "user"]


@ble_group.command("replay")
@common_options
@click.argument("capture", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@ingest_option
@format_option()
def replay_command(capture: Path, ingest: bool, output: str) -> None:
    """The weigh-ins in the advertisements of a btsnoop capture, as if a gateway heard them; stored in
    the journal with --ingest (again: nothing changes), else in a temporary one."""
    from interceptor.ble.btsnoop import BtsnoopError
    from interceptor.ble.framelog import FrameLog
    from interceptor.ble.service import BleService
    from interceptor.model import iso_utc
    from interceptor.pipeline import Pipeline
    from interceptor.sinks import configured_sinks
    from interceptor.store.journal import Journal, JournalError

    config = load()
    with _journal_dir(config, ingest) as data_dir:
        try:
            journal = Journal(data_dir / "journal.sqlite", configured_sinks(config) if ingest else None)
        except JournalError as error:
            raise UserError(str(error)) from None
        replay = _Replay(BleService(config, Pipeline(journal, config), config_path=None, frame_log=FrameLog(None),
                                    clock=lambda: replay.clock))
        try:
            runtime.run(replay.run(capture))
        except BtsnoopError as error:
            raise UserError(f"{capture}: {error}") from None
        finally:
            journal.close()
            replay.service.frame_log.close()
    stored = sorted(replay.stored.values(), key=lambda measurement: measurement.taken_at)
    names = list(dict.fromkeys(name for item in stored for name in sorted(item.readings)))
    zone = config.household.zone

    def when(item: Any) -> str:
        return (item.taken_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if output == "table"
                else iso_utc(item.taken_at))

    write_records(output, [*REPLAY_COLUMNS, *names],
                  [[item.id, when(item), item.device_id, item.user, *(item.readings.get(name) for name in names)]
                   for item in stored])
    where = "in the journal" if ingest else "found (a dry run: --ingest stores them)"
    click.echo(f"{capture}: {replay.frames} advertisement(s), {replay.scale_frames} from scales, "
               f"{len(replay.stored)} weigh-in(s) {where}", err=True)


@contextlib.contextmanager
def _journal_dir(config: Config, ingest: bool) -> Iterator[Path]:
    """The configured data dir with --ingest, else a temporary one that is gone afterwards."""
    if ingest:
        yield config.data_dir
        return
    with tempfile.TemporaryDirectory(prefix="interceptor-ble-replay-") as directory:
        yield Path(directory)


class _Replay:
    """The capture's own time is the clock: timeouts fire as they would have while it was recorded."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.clock = 0.0
        self.frames = 0
        self.scale_frames = 0
        self.stored: dict[int, Any] = {}

    async def run(self, capture: Path) -> None:
        from interceptor.ble.btsnoop import frames

        with capture.open("rb") as stream:
            batch = []
            for frame in frames(stream):
                batch.append(frame)
                if len(batch) >= REPLAY_BATCH:
                    await self.feed(batch)
                    batch = []
            await self.feed(batch)
        self.stored.update({item.id: item for item in await self.service.finish()})

    async def feed(self, batch: list[Any]) -> None:
        if not batch:
            return
        self.clock = batch[-1].time
        accepted = await self.service.accept(batch, self.clock)
        self.frames += accepted.frames
        self.scale_frames += accepted.scale_frames
        self.stored.update({item.id: item for item in accepted.measurements})

