"""`interceptor gateway` and `interceptor ble decode|replay`.

The gateway runs for months on a Raspberry Pi next to the scale, so it must stay small: the
`interceptor` command loads a command's modules only when it runs (`interceptor.cli.LAZY_COMMANDS`),
and this module imports nothing heavy at the top, so the gateway process holds the gateway's
modules and not the server's (docs/benchmarks.md has its RSS).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from interceptor import runtime
from interceptor.paths import default_data_dir

TOKEN_VARIABLE = "INTERCEPTOR_GATEWAY_TOKEN"
REPLAY_BATCH = 500

log = logging.getLogger(__name__)


class GatewayError(click.ClickException):
    """One line for the user, as `interceptor` prints its errors, exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"interceptor: {self.format_message()}", err=True)


def _parse_keys(pairs: tuple[str, ...]) -> dict[str, bytes]:
    from interceptor.ble.frames import FrameError, normalise_mac
    from interceptor.ble.settings import parse_bind_key

    keys = {}
    for pair in pairs:
        mac, separator, key = pair.partition("=")
        if not separator:
            raise GatewayError("--key takes MAC=KEY, e.g. --key 8C:D0:B2:F6:BE:EF=0728974d...")
        try:
            keys[normalise_mac(mac)] = parse_bind_key(key)
        except (FrameError, ValueError) as error:
            raise GatewayError(f"--key {mac}: {error}") from None
    return keys


@click.command("gateway", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--server", metavar="URL", envvar="INTERCEPTOR_GATEWAY_SERVER",
              help="the interceptor server, e.g. http://192.168.1.10 (env INTERCEPTOR_GATEWAY_SERVER)")
@click.option("--token-file", type=click.Path(path_type=Path, dir_okay=False),
              help=f"file holding the server's [ble] token (or set {TOKEN_VARIABLE}; never on the command line)")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              help="where the spool lives (default $XDG_DATA_HOME/interceptor)")
@click.option("--adapter", metavar="NAME", help="Bluetooth adapter, e.g. hci1 (default: the system's)")
@click.option("--listen-only", is_flag=True, help="send nothing: print every scale frame heard, decoded, as JSON")
@click.option("--key", "keys", multiple=True, metavar="MAC=KEY",
              help="with --listen-only: a bind key to decrypt an S400/S200 (repeatable)")
@click.option("--from-file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="replay frames from a btsnoop capture or a JSON-lines file instead of scanning")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="with --from-file: frames per second")
@click.option("--loop", is_flag=True, help="with --from-file: repeat forever, stamping frames with the current time")
@click.option("--spool-max", type=click.IntRange(min=100), default=200_000, show_default=True,
              help="frames kept while the server is unreachable; beyond it the oldest go")
@click.option("--max-retry", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="longest pause in seconds between attempts to reach the server")
@click.option("--debug", is_flag=True, hidden=True)
def gateway_command(server: str | None, token_file: Path | None, data_dir: Path | None,
                    adapter: str | None, listen_only: bool, keys: tuple[str, ...], from_file: Path | None,
                    rate: float | None, loop: bool, spool_max: int, max_retry: float, debug: bool) -> None:
    """Listen to Bluetooth scales and forward their frames to the server (runs until stopped)."""
    if "interceptor.cli" not in sys.modules:  # run as `python -m interceptor.ble.cli`: no logging set up yet
        logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from interceptor.ble.sources import BleakSource, FileSource, FrameSource, SourceError

    source: FrameSource = FileSource(from_file, rate, loop) if from_file else BleakSource(adapter)
    try:
        if listen_only:
            asyncio.run(_listen(source, _parse_keys(keys)))
            return
        options = _gateway_options(server, token_file, data_dir, spool_max, max_retry)
        from interceptor.ble.gateway import Gateway

        gateway = Gateway(options)
        # asyncio's own loop: uvloop would cost the small box ~2 MB for throughput it does not need.
        asyncio.run(gateway.run(source))
        log.info("gateway: source ended; %d frame(s) sent, %d refused", gateway.sent, gateway.rejected)
    except SourceError as error:
        raise GatewayError(str(error)) from None
    except KeyboardInterrupt:
        pass


def _gateway_options(server: str | None, token_file: Path | None, data_dir: Path | None, spool_max: int,
                     max_retry: float) -> Any:
    from interceptor.ble.gateway import GatewayOptions

    if not server:
        raise GatewayError("--server is needed, e.g. --server http://192.168.1.10 (or use --listen-only)")
    if not server.startswith(("http://", "https://")):
        raise GatewayError(f"--server {server!r} is not an http(s) URL; write e.g. http://192.168.1.10")
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise GatewayError(f"cannot read --token-file {token_file}: {error.strerror or error}") from None
    else:
        token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        raise GatewayError(f"no token: pass --token-file FILE or set {TOKEN_VARIABLE} to the server's [ble] token")
    return GatewayOptions(server, token, data_dir or default_data_dir(), spool_max, max_retry)


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


@ble_group.command("decode")
@click.option("--uuid", required=True, help="service-data UUID: 181d (Mi Scale), 181b (Mi Scale 2), fe95 (S400/S200)")
@click.option("--data", required=True, metavar="HEX", help="the service data after the UUID")
@click.option("--mac", help="the scale's address (needed for fe95)")
@click.option("--key", metavar="HEX", help="bind key for an encrypted S400/S200 frame")
def decode_command(uuid: str, data: str, mac: str | None, key: str | None) -> None:
    """Decode one frame and print it as JSON."""
    from interceptor.ble.decode import decode_hex
    from interceptor.ble.errors import DecodeError
    from interceptor.ble.frames import FrameError, parse_hex
    from interceptor.ble.settings import parse_bind_key

    try:
        key_bytes = parse_bind_key(key) if key is not None else None
    except ValueError as error:
        raise GatewayError(f"--key: {error}") from None
    try:
        decoded = decode_hex(uuid, parse_hex(data, "--data"), mac, key_bytes)
    except (DecodeError, FrameError) as error:
        raise GatewayError(str(error)) from None
    click.echo(json.dumps(decoded, indent=2))


@ble_group.command("replay")
@click.argument("capture", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              help="TOML file (default ./interceptor.toml, then /etc/interceptor/interceptor.toml)")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              help="where the journal lives (overrides data_dir in the config)")
def replay_command(capture: Path, config_path: Path | None, data_dir: Path | None) -> None:
    """Feed the advertisements of a btsnoop capture into the journal, as if a gateway heard them."""
    from interceptor.ble.btsnoop import BtsnoopError
    from interceptor.ble.framelog import FrameLog
    from interceptor.ble.service import BleService
    from interceptor.cli import EXIT_CONFIG, UserError
    from interceptor.config import ConfigError, load_config
    from interceptor.pipeline import Pipeline
    from interceptor.sinks import configured_sinks
    from interceptor.store.journal import Journal, JournalError

    try:
        config = load_config(config_path, overrides={"data_dir": str(data_dir) if data_dir else None})
    except ConfigError as error:
        raise UserError(str(error), EXIT_CONFIG) from None
    try:
        journal = Journal(config.data_dir / "journal.sqlite", configured_sinks(config))
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
    for item in sorted(replay.stored.values(), key=lambda measurement: measurement.taken_at):
        click.echo(f"{item.id}\t{item.taken_at.isoformat()}\t{item.device_id}\t{item.user or '-'}\t"
                   f"{json.dumps(item.readings, sort_keys=True)}")
    click.echo(f"{capture}: {replay.frames} advertisement(s), {replay.scale_frames} from scales, "
               f"{len(replay.stored)} weigh-in(s) in the journal", err=True)


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


if __name__ == "__main__":
    gateway_command(prog_name="interceptor gateway")
