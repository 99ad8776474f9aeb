"""`interceptor doctor`: checks a user can run from their box, each ending in what to fix.

It looks at what the product depends on, in the order a user sets it up: the config, the journal,
the HTTP and DNS ports, the DNS answer for the scale's host name, InfluxDB (reachable, and accepting
a write), Home Assistant's broker and the Garmin sign-ins. Nothing here changes the user's data
except one marker point in InfluxDB (measurement `interceptor_doctor`), which is the only way to
prove write permission.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import ipaddress
import socket
import sqlite3
import time
from dataclasses import dataclass

from interceptor.config import Config, parse_host_port
from interceptor.garmin.sink import sink_name
from interceptor.store.influx import SinkError, make_writer
from interceptor.store.integrity import STARTUP_CHECK_S, start_check
from interceptor.store.journal import Filter, JournalError, reader_of

SCALE_HOST = "scalews.withings.net"
SINK_LABELS = {"influx": "InfluxDB", "mqtt": "Home Assistant"}  # outbox sink names


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


def _loopback_for(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def check_journal(config: Config) -> Check:
    path = config.data_dir / "journal.sqlite"
    if not path.exists():
        return Check("journal", True, f"{path} does not exist yet; it is created when `interceptor serve` starts")
    check = start_check(path)  # every page, for as long as `serve` would wait at start-up
    concurrent.futures.wait([check], STARTUP_CHECK_S)
    problem = check.result() if check.done() else None
    if problem is not None:
        return Check("journal", False, f"{path} is damaged ({problem}): stop the server and run"
                     " `interceptor journal recover`")
    try:
        with reader_of(path) as reader:
            count = reader.count(Filter(kind="body"))
            garmin = {sink_name(person): f"Garmin Connect ({person})" for person in config.garmin.users}
            sinks = {**SINK_LABELS, **garmin}
            backlogs = {label: reader.backlog(sink) for sink, label in sinks.items()}
    except (JournalError, sqlite3.DatabaseError) as error:
        return Check("journal", False, f"{path}: {error}")
    waiting = "".join(
        f"; {queued.items} item(s) waiting for {label}" + (f" (last error: {queued.last_error})" if queued.last_error
                                                           else "")
        for label, queued in backlogs.items() if queued.items)
    unread = "" if check.done() else f"; not read through in {STARTUP_CHECK_S:g} s (`interceptor journal check` does)"
    return Check("journal", True, f"{path}: {count} weigh-in(s){waiting}{unread}")


async def _is_our_http(host: str, port: int) -> bool:
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


async def check_http(config: Config) -> Check:
    host, port = config.http.host_port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except PermissionError:
            return Check("http port", False, f"{host}:{port} needs privileges: run as root or grant"
                         " CAP_NET_BIND_SERVICE (deploy/systemd/interceptor.service does)")
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                return Check("http port", False, f"cannot listen on {host}:{port}: {error.strerror}")
            if await _is_our_http(host, port):
                return Check("http port", True, f"interceptor is answering on {host}:{port}")
            return Check("http port", False, f"{host}:{port} is taken by another program: stop it or change"
                         " [http] listen (the scale needs port 80, so redirect it if you move)")
    return Check("http port", True, f"{host}:{port} is free; `interceptor serve` will listen there")


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


async def check_dns(config: Config) -> Check:
    if not config.dns.enabled:
        return Check("dns", True, "the DNS responder is disabled ([dns] enabled = false): your own resolver must"
                     f" answer {SCALE_HOST} with this box's address (`interceptor dns snippet --for ...`)")
    host, port = parse_host_port(config.dns.listen[0]) if config.dns.listen else ("127.0.0.1", 53)
    server = _loopback_for(host)
    addresses = await _ask(server, port, SCALE_HOST)
    if addresses is None:
        return Check("dns", False, f"nothing answers DNS on {server}:{port}: start `interceptor serve` (or"
                     " `interceptor dns`)")
    if not addresses or not all(_is_local_network(address) for address in addresses):
        return Check("dns", False, f"{server}:{port} answers {SCALE_HOST} with {addresses or 'nothing'}, not this"
                     " box: check [dns] intercept rules")
    return Check("dns", True, f"{server}:{port} answers {SCALE_HOST} with {', '.join(addresses)}; point your"
                 " router's DNS (or the scale's) at this box")


async def check_influx(config: Config) -> Check:
    settings = config.influx
    if not settings.enabled:
        return Check("influxdb", True, "not configured: weigh-ins are kept in the journal only (add [influx] url"
                     " to feed Grafana)")
    writer = make_writer(settings)
    try:
        await writer.probe()
        await writer.write([f"interceptor_doctor,check=write ok=1.0 {int(time.time())}"])
    except SinkError as error:
        return Check("influxdb", False, str(error))
    finally:
        await writer.close()
    target = f"bucket '{settings.bucket}'" if settings.dialect == "v2" else f"database '{settings.database}'"
    return Check("influxdb", True, f"{settings.shown_url} accepts writes to {target} ({settings.dialect} dialect)")


async def check_mqtt(config: Config) -> Check:
    settings = config.mqtt
    if not settings.enabled:
        return Check("home assistant", True, "not configured (add [mqtt] url to publish to Home Assistant:"
                     " docs/home-assistant.md)")
    from interceptor.homeassistant.link import probe

    problem = await probe(settings)
    if problem is not None:
        return Check("home assistant", False, problem)
    return Check("home assistant", True, f"the MQTT broker at {settings.url} lets us in; discovery under"
                 f" {settings.discovery_prefix}/")


def check_garmin(config: Config) -> Check:
    """Whether serve can upload for each person in [garmin] users: the extra, and a kept sign-in
    (nothing is sent to Garmin here: a sign-in is only tried by an upload)."""
    people = config.garmin.users
    if not people:
        return Check("garmin connect", True, "no one's weigh-ins go to Garmin Connect ([garmin] users;"
                     " docs/import-export.md)")
    from interceptor.garmin import library
    from interceptor.garmin.tokens import TokenStore

    if not library.available():
        return Check("garmin connect", False, str(library.NotInstalled()))
    missing = []
    for person in people:
        try:
            TokenStore(config.data_dir, person).require()
        except library.GarminError as error:
            missing.append(str(error))
    if missing:
        return Check("garmin connect", False, "; ".join(missing))
    return Check("garmin connect", True, f"signed in for {', '.join(people)}; new weigh-ins are uploaded by serve")


async def run_checks(config: Config) -> list[Check]:
    return [
        check_journal(config),
        await check_http(config),
        await check_dns(config),
        await check_influx(config),
        await check_mqtt(config),
        check_garmin(config),
    ]
