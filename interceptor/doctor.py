"""`interceptor doctor`: checks a user can run from their box, each ending in what to fix.

It looks at what the product depends on, in the order a user sets it up: the config, the journal, the
running server (from the state file `serve` keeps in the data dir: where it really listens, whatever
flags it was started with), its HTTP and DNS listeners, the DNS answer for the scale's host name, what
each scale did (asked our DNS, talked HTTP, tried TLS), InfluxDB, Home Assistant's broker and the
Garmin sign-ins. It changes nothing: the journal and the request log are opened read-only, and
InfluxDB gets an empty write, which checks the credentials and the database without storing a point.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import ipaddress
import socket
import sqlite3
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from interceptor.config import Config, ConfigSource, household_text
from interceptor.garmin.sink import sink_name
from interceptor.hostport import parse_host_port
from interceptor.serverstate import ServerState, StateError, read_state
from interceptor.startup import interpreter
from interceptor.store.influx import SinkError, make_writer
from interceptor.store.integrity import STARTUP_CHECK_S, start_check
from interceptor.store.journal import Filter, JournalError, reader_of

SCALE_HOST = "scalews.withings.net"
SINK_LABELS = {"influx": "InfluxDB", "mqtt": "Home Assistant"}  # outbox sink names
Level = Literal["ok", "warn", "FAIL"]
# Scales are on the LAN: what asks from this box itself (doctor's own DNS question) is not a scale.
THIS_BOX = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    detail: str

    @property
    def ok(self) -> bool:
        return self.level != "FAIL"

    def line(self) -> str:
        return f"{self.level:<4}  {self.name}: {self.detail}"


def _loopback_for(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _local_time(moment: float, config: Config) -> str:
    return datetime.fromtimestamp(moment, config.household.zone).strftime("%Y-%m-%d %H:%M:%S")


def check_config(config: Config, source: ConfigSource) -> Check:
    if not config.users:
        return Check("config", "warn", f"{source.describe()}; nobody in the household, so weigh-ins are stored for"
                     " nobody: pass --config FILE, or add [[users]] (interceptor.example.toml shows how)")
    return Check("config", "ok", f"{source.describe()}; household {household_text(config)}")


def check_journal(config: Config) -> Check:
    path = config.data_dir / "journal.sqlite"
    if not path.exists():
        return Check("journal", "ok", f"{path} does not exist yet; it is created when `interceptor serve` starts")
    check = start_check(path)  # every page, for as long as `serve` would wait at start-up
    concurrent.futures.wait([check], STARTUP_CHECK_S)
    problem = check.result() if check.done() else None
    if problem is not None:
        return Check("journal", "FAIL", f"{path} is damaged ({problem}): stop the server and run"
                     " `interceptor journal recover`")
    try:
        with reader_of(path) as reader:
            count = reader.count(Filter(kind="body"))
            garmin = {sink_name(person): f"Garmin Connect ({person})" for person in config.garmin.users}
            sinks = {**SINK_LABELS, **garmin}
            backlogs = {label: reader.backlog(sink) for sink, label in sinks.items()}
    except (JournalError, sqlite3.DatabaseError) as error:
        return Check("journal", "FAIL", f"{path}: {error}")
    waiting = "".join(
        f"; {queued.items} item(s) waiting for {label}" + (f" (last error: {queued.last_error})" if queued.last_error
                                                           else "")
        for label, queued in backlogs.items() if queued.items)
    unread = "" if check.done() else f"; not read through in {STARTUP_CHECK_S:g} s (`interceptor journal check` does)"
    return Check("journal", "ok", f"{path}: {count} weigh-in(s){waiting}{unread}")


def check_server(config: Config, state: ServerState | None, problem: str | None) -> Check:
    if problem is not None:
        return Check("server", "warn", f"{problem}: run doctor as the service's user (e.g. `sudo -u interceptor"
                     " interceptor doctor ...`) to see what the server saw")
    if state is None:
        return Check("server", "FAIL", f"`interceptor serve` has never run with data dir {config.data_dir}: start it"
                     " (or pass the --data-dir it runs with)")
    if not state.running():
        ended = f" at {_local_time(state.stopped_at, config)}" if state.stopped_at else " (killed)"
        return Check("server", "FAIL", f"`interceptor serve` is not running: it stopped{ended}; start it again"
                     " (`sudo systemctl start interceptor`, or `interceptor serve`)")
    listening = "; ".join(f"{what} on {', '.join(where)}" for what, where in state.listening.items())
    return Check("server", "ok", f"`interceptor serve` (pid {state.pid}) running since"
                 f" {_local_time(state.started_at, config)}: {listening}")


async def _answers_like_us(host: str, port: int) -> bool:
    """Does the thing on this port answer like our emulated cloud?"""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(_loopback_for(host), port), 2)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"POST /cgi-bin/once HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
                     b"action=get")
        answer = await asyncio.wait_for(reader.read(4096), 2)
        return b'"once":' in answer
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


def _bind_problem(host: str, port: int) -> OSError | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return error
    return None


async def check_http(config: Config, address: str, running: bool) -> Check:
    """First whether our server answers there (then nothing else matters), then whether it could listen."""
    host, port = parse_host_port(address)
    if await _answers_like_us(host, port):
        return Check("http", "ok", f"interceptor answers the scale's requests on {address}")
    if running:
        return Check("http", "FAIL", f"`interceptor serve` listens on {address} but does not answer there: look at"
                     " its log (`journalctl -u interceptor`)")
    problem = _bind_problem(host, port)
    if problem is None:
        return Check("http", "ok", f"{address} is free; `interceptor serve` will listen there")
    if isinstance(problem, PermissionError):
        return Check("http", "warn", f"port {port} needs privileges this user lacks: `interceptor serve` must run"
                     " as root, with CAP_NET_BIND_SERVICE (deploy/systemd/interceptor.service grants it), or after"
                     f" `sudo setcap cap_net_bind_service=+ep {interpreter()}`")
    if problem.errno == errno.EADDRINUSE:
        return Check("http", "FAIL", f"{address} is taken by another program: stop it or change [http] listen (the"
                     " scale needs port 80, so redirect it if you move)")
    return Check("http", "FAIL", f"cannot listen on {address}: {problem.strerror or problem}")


def _dns_query(name: str) -> bytes:
    from dnslib import DNSRecord

    return bytes(DNSRecord.question(name, "A").pack())


async def _ask(server: str, port: int, name: str, timeout: float = 2.0) -> list[str] | None:
    """A records from one DNS server over UDP; None when it does not answer."""
    from dnslib import QTYPE, DNSRecord

    loop = asyncio.get_running_loop()
    answered: asyncio.Future[bytes] = loop.create_future()

    class _Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple) -> None:
            if not answered.done():
                answered.set_result(data)

    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    transport, _ = await loop.create_datagram_endpoint(_Client, remote_addr=(server, port), family=family)
    try:
        transport.sendto(_dns_query(name))
        reply = DNSRecord.parse(await asyncio.wait_for(answered, timeout))
    except (TimeoutError, OSError, ValueError):
        return None
    finally:
        transport.close()
    return [str(record.rdata) for record in reply.rr if record.rtype == QTYPE.A]


def _is_local_network(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_private or ip.is_loopback or ip.is_link_local


async def check_dns(config: Config, address: str | None) -> Check:
    if address is None:
        return Check("dns", "ok", "the DNS responder is off: your own resolver must answer"
                     f" {SCALE_HOST} with this box's address (`interceptor dns snippet --for ...`)")
    host, port = parse_host_port(address)
    server = _loopback_for(host)
    addresses = await _ask(server, port, SCALE_HOST)
    if addresses is None:
        return Check("dns", "FAIL", f"nothing answers DNS on {server}:{port}: start `interceptor serve` (or"
                     " `interceptor dns`)")
    if not addresses or not all(_is_local_network(found) for found in addresses):
        return Check("dns", "FAIL", f"{server}:{port} answers {SCALE_HOST} with {addresses or 'nothing'}, not this"
                     " box: check [dns] intercept rules")
    return Check("dns", "ok", f"{server}:{port} answers {SCALE_HOST} with {', '.join(addresses)}; point your"
                 " router's DNS (or the scale's) at this box")


@dataclass
class _Client:
    """What one address on the network did, from the state file and the request log."""

    asked: list[dict[str, Any]]  # DNS questions about the vendor's names
    tls: list[dict[str, Any]]  # TLS attempts seen by the probe
    http_requests: int = 0
    http_last: float | None = None


def http_clients(data_dir: Path) -> dict[str, tuple[int, float]]:
    """Requests and the time of the last, per address, from the request log (read-only)."""
    from interceptor.store.database import open_reader

    path = data_dir / "requests.sqlite"
    if not path.exists():
        return {}
    try:
        db = open_reader(path)
    except (sqlite3.Error, OSError):
        return {}
    try:
        rows = db.execute("SELECT peer, count(*), max(received_at) FROM requests WHERE peer IS NOT NULL"
                          " GROUP BY peer").fetchall()
    except sqlite3.Error:
        return {}
    finally:
        db.close()
    return {str(peer): (int(count), float(last)) for peer, count, last in rows}


def check_scales(config: Config, state: ServerState) -> list[Check]:
    """Per client that asked for the vendor's names or tried TLS: did it reach us, and how."""
    intercepted = {rule.name for rule in config.dns.intercept}
    clients: dict[str, _Client] = {}
    for asked in state.dns:
        if asked.get("client") not in THIS_BOX:
            clients.setdefault(str(asked["client"]), _Client([], [])).asked.append(asked)
    for attempt in state.tls:
        if attempt.get("client") not in THIS_BOX:
            clients.setdefault(str(attempt["client"]), _Client([], [])).tls.append(attempt)
    for peer, (count, last) in http_clients(config.data_dir).items():
        if peer in clients:
            clients[peer].http_requests, clients[peer].http_last = count, last
    dns_on = "DNS" in state.listening
    if not clients:
        if not dns_on:
            return []
        since = _local_time(state.started_at, config)
        return [Check("scales", "warn", f"no device has asked this responder for {', '.join(sorted(intercepted))}"
                      f" since {since}: point the router's DNS (or the scale's) at this box (deploy/dns.md), then"
                      " step on the scale")]
    probe = _first(state.listening.get("TLS probe"))
    probe_port = parse_host_port(probe)[1] if probe else None
    return [_verdict(address, client, intercepted, probe_port, config) for address, client in sorted(clients.items())]


def _verdict(address: str, client: _Client, intercepted: set[str], probe_port: int | None, config: Config) -> Check:
    names = ", ".join(sorted({str(asked["name"]) for asked in client.asked})) or "nothing from our DNS"
    name = f"scale {address}"
    forwarded = sorted({str(asked["name"]) for asked in client.asked if not asked.get("intercepted", True)})
    if client.http_requests:
        return Check(name, "ok", f"asked for {names} and talks to us over HTTP ({client.http_requests} request(s),"
                     f" the last at {_local_time(client.http_last or 0, config)})")
    if client.tls:
        servers = ", ".join(sorted({str(attempt["server_name"] or "no server name") for attempt in client.tls}))
        versions = ", ".join(sorted({str(attempt["version"]) for attempt in client.tls}))
        return Check(name, "FAIL", f"the scale at {address} asked for {names} and tried TLS on {probe_port or 443}"
                     f" ({versions},"
                     f" server name {servers}): this model does not upload over plain HTTP, so Scale Interceptor"
                     " cannot read it; captures/README.md says how to send us a capture of it")
    if forwarded and not set(forwarded) <= intercepted:
        return Check(name, "FAIL", f"{address} asked for {', '.join(forwarded)}, which is not intercepted, so it"
                     " was sent to the real cloud: add it to [dns] intercept if it is the scale's")
    advice = ("is port 80 of this box reachable from it (a firewall)?" if probe_port else
              "start `interceptor serve --tls-probe-listen 0.0.0.0:443` (or [tls_probe] enabled = true) to see"
              " whether it tries TLS instead")
    return Check(name, "warn", f"{address} asked for {names} but never talked HTTP to us: {advice}")


async def check_influx(config: Config) -> Check:
    settings = config.influx
    if not settings.enabled:
        return Check("influxdb", "ok", "not configured: weigh-ins are kept in the journal only (add [influx] url"
                     " to feed Grafana)")
    writer = make_writer(settings)
    try:
        await writer.check_write()
    except SinkError as error:
        return Check("influxdb", "FAIL", str(error))
    finally:
        await writer.close()
    target = f"bucket '{settings.bucket}'" if settings.dialect == "v2" else f"database '{settings.database}'"
    return Check("influxdb", "ok", f"{settings.shown_url} accepts writes to {target} ({settings.dialect} dialect)")


async def check_mqtt(config: Config) -> Check:
    settings = config.mqtt
    if not settings.enabled:
        return Check("home assistant", "ok", "not configured (add [mqtt] url to publish to Home Assistant:"
                     " docs/home-assistant.md)")
    from interceptor.homeassistant.link import probe

    problem = await probe(settings)
    if problem is not None:
        return Check("home assistant", "FAIL", problem)
    return Check("home assistant", "ok", f"the MQTT broker at {settings.url} lets us in; discovery under"
                 f" {settings.discovery_prefix}/")


def check_garmin(config: Config) -> Check:
    """Whether serve can upload for each person in [garmin] users: the extra, and a kept sign-in
    (nothing is sent to Garmin here: a sign-in is only tried by an upload)."""
    people = config.garmin.users
    if not people:
        return Check("garmin connect", "ok", "no one's weigh-ins go to Garmin Connect ([garmin] users;"
                     " docs/import-export.md)")
    from interceptor.garmin import library
    from interceptor.garmin.tokens import TokenStore

    if not library.available():
        return Check("garmin connect", "FAIL", str(library.NotInstalled()))
    missing = []
    for person in people:
        try:
            TokenStore(config.data_dir, person).require()
        except library.GarminError as error:
            missing.append(str(error))
    if missing:
        return Check("garmin connect", "FAIL", "; ".join(missing))
    return Check("garmin connect", "ok", f"signed in for {', '.join(people)}; new weigh-ins are uploaded by serve")


def _first(addresses: list[str] | None) -> str | None:
    return addresses[0] if addresses else None


async def run_checks(config: Config, source: ConfigSource, flags: Mapping[str, str | None],
                     only: Collection[str] = ()) -> list[Check]:
    """`flags`: addresses given on doctor's command line ("HTTP", "DNS"), which win over the state file;
    `only`: the checks to run, all when empty (a container's healthcheck wants the server and HTTP alone)."""
    only = only or ("config", "journal", "server", "http", "dns", "scales", "influxdb", "mqtt", "garmin")
    try:
        state, problem = read_state(config.data_dir), None
    except StateError as error:
        state, problem = None, str(error)
    running = state is not None and state.running()
    listening = state.listening if running and state is not None else {}
    http = flags.get("HTTP") or _first(listening.get("HTTP")) or config.http.listen
    if running:
        dns = flags.get("DNS") or _first(listening.get("DNS"))
    else:
        dns = flags.get("DNS") or (_first(list(config.dns.listen)) if config.dns.enabled else None)
    checks = []
    if "config" in only:
        checks.append(check_config(config, source))
    if "journal" in only:
        checks.append(check_journal(config))
    if "server" in only:
        checks.append(check_server(config, state, problem))
    if "http" in only:
        checks.append(await check_http(config, http, running))
    if "dns" in only:
        checks.append(await check_dns(config, dns))
    if "scales" in only and state is not None:
        checks += check_scales(config, state)
    if "influxdb" in only:
        checks.append(await check_influx(config))
    if "mqtt" in only:
        checks.append(await check_mqtt(config))
    if "garmin" in only:
        checks.append(check_garmin(config))
    return checks
