"""`interceptor serve`: open every listener, say where it listens, run until SIGINT/SIGTERM.

Every listener is started before anything is reported: when some cannot listen, all their problems
are raised together (`StartupFailed`, worded by the command with its own flags through
`interceptor.startup`), nothing is said to be listening, and what did start is closed again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import logging
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from interceptor.app import JOURNAL, PIPELINE, create_app
from interceptor.config import Config
from interceptor.listeners import start_listener
from interceptor.serverstate import ServerState, StateWriter
from interceptor.startup import ListenError
from interceptor.store.integrity import STARTUP_CHECK_S, start_check
from interceptor.store.journal import Journal

if TYPE_CHECKING:
    from interceptor.capture.record import RecordingSettings
    from interceptor.dns.server import DnsServer
    from interceptor.tls.probe import TlsProbe
    from interceptor.web.app import Health

log = logging.getLogger(__name__)


class ServeError(Exception):
    """A start-up failure the user can fix; the message says how."""


class StartupFailed(Exception):
    """Listeners that could not listen, in the order they were started."""

    def __init__(self, problems: list[ListenError]) -> None:
        super().__init__("; ".join(str(problem) for problem in problems))
        self.problems = problems


def _shown(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def run(config: Config, *, query_log: bool = False,
              capture: RecordingSettings | None = None, config_path: str | None = None) -> None:
    """`capture`: also write every connection to a pcapng file (`interceptor.capture.record`)."""
    check = await _check_journal(config.data_dir / "journal.sqlite")
    app = create_app(config)
    if check is not None:  # a large journal: its check goes on, and stops writes if it finds damage
        journal = app[JOURNAL]
        check.add_done_callback(lambda done: _checked(journal, done))
    problems: list[ListenError] = []
    async with contextlib.AsyncExitStack() as started:
        runner = await _start_http(config, app, capture, problems)
        if runner is not None:
            started.push_async_callback(runner.cleanup)
        dns = config.dns.enabled
        health = web_runner = None
        if config.web.enabled:
            try:
                web_runner, health = await _start_web(config, app, dns)
                started.push_async_callback(web_runner.cleanup)
            except ListenError as problem:
                problems.append(problem)
                web_runner = None
        dns_server = await _start_dns(config, query_log, problems) if dns else None
        if dns_server is not None:
            started.push_async_callback(dns_server.close)
        probe = await _start_tls_probe(config, problems) if config.tls_probe.enabled else None
        if probe is not None:
            started.push_async_callback(probe.close)
        if problems:
            raise StartupFailed(problems)

        assert runner is not None  # no problem, so it listens
        listening = {"HTTP": [_shown(*address[:2]) for address in runner.addresses]}
        log.info("Withings cloud listening on %s", ", ".join(f"http://{where}/" for where in listening["HTTP"]))
        if web_runner is not None:
            listening["web"] = [_shown(*address[:2]) for address in web_runner.addresses]
            log.info("household page on %s%s", ", ".join(f"http://{where}/" for where in listening["web"]),
                     " (password required)" if config.web.password else "")
        if dns_server is not None:
            listening["DNS"] = [_shown(host, port) for host, port in dns_server.addresses]
            log.info("DNS responder listening on %s", ", ".join(listening["DNS"]))
            if health is not None:  # the health page shows what the responder told the scale
                health.dns_answers, health.dns_clock = dns_server.resolver.intercepts, dns_server.loop.time
        if probe is not None:
            listening["TLS probe"] = [_shown(host, port) for host, port in probe.addresses]
            log.info("TLS probe listening on %s (it records who tries TLS, for which name, and closes)",
                     ", ".join(listening["TLS probe"]))
        state = StateWriter(config.data_dir, ServerState(os.getpid(), time.time(), config_path, listening),
                            *_evidence(dns_server, probe))
        state.start()
        started.push_async_callback(state.stop)
        # Everything loaded so far lives as long as the server: keep the collector from walking it
        # again and again, which would show as latency spikes for scales and DNS clients.
        gc.collect()
        gc.freeze()
        await _wait_for_stop()


async def _start_http(config: Config, app: web.Application, capture: RecordingSettings | None,
                      problems: list[ListenError]) -> web.AppRunner | None:
    """The emulated cloud under the listener guard (interceptor.listeners); None, and the problem
    noted, when its address cannot be bound."""
    host, port = config.http.host_port
    tap = None
    if capture is not None:
        from interceptor.capture.record import recording_tap

        try:
            tap = recording_tap(capture)
        except OSError as error:
            raise ServeError(f"--capture {capture.directory}: {error.strerror or error}") from None
    try:
        return await start_listener(app, host, port, config.http, tap=tap, access_log_format='%a "%r" %s %b %Tfs')
    except OSError as error:
        problems.append(ListenError("HTTP", host, port, error))
        return None


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
        raise ListenError("web", host, port, error) from None


async def _start_dns(config: Config, query_log: bool, problems: list[ListenError]) -> DnsServer | None:
    from interceptor.dns.server import DnsStartError, start_dns_server

    try:
        return await start_dns_server(config.dns, query_log=query_log)
    except ListenError as problem:
        problems.append(problem)
    except DnsStartError as error:
        raise ServeError(str(error)) from None
    return None


async def _start_tls_probe(config: Config, problems: list[ListenError]) -> TlsProbe | None:
    from interceptor.tls.probe import TlsProbe

    probe = TlsProbe(config.tls_probe)
    try:
        await probe.start()
    except OSError as error:
        problems.append(ListenError("TLS probe", *config.tls_probe.host_port, error))
        return None
    return probe


def _evidence(dns_server: DnsServer | None, probe: TlsProbe | None) -> tuple:
    """What the state file keeps of the responder's and the probe's records, and how to see a change."""

    def changes() -> int:
        return (dns_server.resolver.intercepts.changes if dns_server else 0) + (probe.attempts.changes if probe else 0)

    def collect() -> tuple[list[dict], list[dict]]:
        dns = ([answer.as_json() for answer in
                dns_server.resolver.intercepts.snapshot(dns_server.loop.time(), time.time())] if dns_server else [])
        return dns, [attempt.as_json() for attempt in probe.attempts.snapshot()] if probe else []

    return changes, collect


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
