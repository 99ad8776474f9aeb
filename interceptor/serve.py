"""`interceptor serve`: bind the sockets, run until SIGINT/SIGTERM, and say plainly why a bind failed."""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import gc
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from interceptor.app import JOURNAL, PIPELINE, create_app
from interceptor.config import Config
from interceptor.listeners import start_listener
from interceptor.store.integrity import STARTUP_CHECK_S, start_check
from interceptor.store.journal import Journal

if TYPE_CHECKING:
    from interceptor.capture.record import RecordingSettings
    from interceptor.web.app import Health

log = logging.getLogger(__name__)


class ServeError(Exception):
    """A start-up failure the user can fix; the message says how."""


def bind_error_message(what: str, host: str, port: int, error: OSError) -> str:
    flag = {"HTTP": "--http-listen", "web": "--web-listen"}.get(what, "--listen")
    if isinstance(error, PermissionError) or error.errno == errno.EACCES:
        return (
            f"{what} port {port} needs privileges: run as root, or grant the capability with"
            f" `sudo setcap cap_net_bind_service=+ep $(readlink -f $(which python3))` (the systemd unit in"
            f" deploy/ uses AmbientCapabilities=CAP_NET_BIND_SERVICE), or use {flag} {host}:{port + 8000}"
            f" and redirect port {port} to it"
        )
    if error.errno == errno.EADDRINUSE:
        return f"{what} address {host}:{port} is already in use: stop the other server or choose {flag} HOST:PORT"
    if error.errno == errno.EADDRNOTAVAIL:
        return f"{what} address {host} is not an address of this machine: choose {flag} with one that is"
    return f"cannot listen for {what} on {host}:{port}: {error.strerror or error}"


async def run(config: Config, *, with_dns: bool = True, query_log: bool = False,
              capture: RecordingSettings | None = None) -> None:
    """`capture`: also write every connection to a pcapng file (`interceptor.capture.record`)."""
    check = await _check_journal(config.data_dir / "journal.sqlite")
    app = create_app(config)
    if check is not None:  # a large journal: its check goes on, and stops writes if it finds damage
        journal = app[JOURNAL]
        check.add_done_callback(lambda done: _checked(journal, done))
    host, port = config.http.host_port
    dns_server = None
    web_runner = None
    tap = None
    if capture is not None:
        from interceptor.capture.record import recording_tap

        try:
            tap = recording_tap(capture)
        except OSError as error:
            raise ServeError(f"--capture {capture.directory}: {error.strerror or error}") from None
    try:
        runner = await start_listener(app, host, port, config.http, tap=tap, access_log_format='%a "%r" %s %b %Tfs')
    except OSError as error:
        raise ServeError(bind_error_message("HTTP", host, port, error)) from None
    try:
        # Everything loaded so far lives as long as the server: keep the collector from walking it
        # again and again, which would show as latency spikes for scales and DNS clients.
        gc.collect()
        gc.freeze()
        for address in runner.addresses:
            log.info("Withings cloud listening on http://%s:%s/ (journal %s)", address[0], address[1],
                     config.data_dir / "journal.sqlite")
        dns = with_dns and config.dns.enabled
        health = None
        if config.web.enabled:
            web_runner, health = await _start_web(config, app, dns)
        if dns:
            from interceptor.dns.server import DnsStartError, start_dns_server

            try:
                dns_server = await start_dns_server(config.dns, query_log=query_log)
            except DnsStartError as error:
                raise ServeError(str(error)) from None
            if health is not None:  # the health page shows what the responder told the scale
                health.dns_answers, health.dns_clock = dns_server.resolver.intercepts, dns_server.loop.time
        await _wait_for_stop()
    finally:
        if dns_server is not None:
            await dns_server.close()
        if web_runner is not None:
            await web_runner.cleanup()
        await runner.cleanup()


async def _start_web(config: Config, app: web.Application, dns: bool) -> tuple[web.AppRunner, Health]:
    """The household page on its own listener, sharing the cloud's journal and pipeline."""
    from interceptor.web.app import Health
    from interceptor.web.server import start_web
    from interceptor.withings.routes import utc_now

    health = Health(dns, tuple(rule.name for rule in config.dns.intercept))
    host, port = config.web.host_port
    try:
        return await start_web(config, app[JOURNAL], app[PIPELINE], health, utc_now), health
    except OSError as error:
        raise ServeError(bind_error_message("web", host, port, error)) from None


async def _check_journal(path: Path) -> concurrent.futures.Future[str | None] | None:
    """Refuse to serve a damaged journal; a check still running after STARTUP_CHECK_S is returned."""
    if not path.exists():
        return None
    check = start_check(path)
    await asyncio.to_thread(concurrent.futures.wait, [check], STARTUP_CHECK_S)
    if not check.done():
        log.info("the journal %s is large: its check goes on while the server runs", path)
        return check
    problem = check.result()
    if problem is not None:
        raise ServeError(f"the journal {path} is damaged ({problem}): not serving, so that no weigh-in is"
                         " acknowledged into it; run `interceptor journal recover` to copy what can be read into a"
                         " new journal (the damaged one is kept)")
    return None


def _checked(journal: Journal, check: concurrent.futures.Future[str | None]) -> None:
    """On the check's thread, when a background check ends."""
    error = check.exception()
    if error is not None:
        log.error("the journal check failed: %s", error)
    elif (problem := check.result()) is not None:
        journal.mark_damaged(problem)
    else:
        log.info("the journal check found no damage")


async def _wait_for_stop() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("stopping")
