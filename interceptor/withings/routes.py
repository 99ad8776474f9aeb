"""The emulated `scalews.withings.net`: thin aiohttp handlers around `withings.protocol`.

Each handler reads the body, lets the sans-I/O protocol parse it, hands readings to the pipeline,
and only then answers `status 0`. Every request, accepted or not, is written to the request log
with its (masked) body, so a new firmware's behaviour can be reproduced from the log alone. What the
server log says about a client's request (a refusal, an unknown endpoint, an unexpected field) goes
through the listener's notices: a few lines per client and minute, with excerpts of what it sent.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web

from interceptor.config import Config
from interceptor.masking import mask_form, mask_path
from interceptor.model import Measurement, Reading, iso_utc
from interceptor.notices import Notices, Quoted
from interceptor.pipeline import Clock, Pipeline, utc_now
from interceptor.plausibility import Implausible
from interceptor.store.database import JournalError
from interceptor.store.requestlog import RequestLog
from interceptor.users import age_in_years, withings_user_id
from interceptor.withings import protocol
from interceptor.withings.protocol import ProtocolError

log = logging.getLogger(__name__)

SOURCE = "withings"
SESSION_TTL_SECONDS = 3600
MAX_SESSIONS = 1024


@dataclass(frozen=True)
class Session:
    mac: str
    opened: float
    battery_pct: float | None  # as the scale reported it when opening the session
    peer: str | None  # the address it came from: a request naming no scale is that peer's latest

@dataclass
class Outcome:
    """What the request log records about one request once its reply is decided."""

    name: str = "ok"
    detail: str | None = None
    status: int | None = protocol.STATUS_OK


def _reply(body: bytes, http_status: int = 200) -> web.Response:
    """`text/plain` with a Content-Length, as the real server answered `once` (reference §1.2)."""
    return web.Response(body=body, status=http_status, headers={"Content-Type": "text/plain"})


class WithingsCloud:
    """State the protocol needs between requests: open sessions (session id → MAC)."""

    def __init__(self, config: Config, pipeline: Pipeline, request_log: RequestLog, notices: Notices,
                 clock: Clock = utc_now):
        self.config = config
        self.pipeline = pipeline
        self.request_log = request_log
        self.notices = notices
        self.clock = clock
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self._transition: tuple[protocol.ClockTransition, datetime, datetime] | None = None  # valid from, until
        self._user_created: dict[str, int] = {}
        self._users: tuple[tuple[tuple[float, float, int], ...], list[protocol.ScaleUser]] | None = None

    def clock_transition(self, now: datetime) -> protocol.ClockTransition:
        """Recomputed hourly, and at once when the announced change has passed."""
        if self._transition is not None:
            transition, computed, until = self._transition
            if computed <= now < until:
                return transition
        transition = protocol.clock_transition(self.config.household.zone, now)
        until = now + timedelta(hours=1)
        if transition.next_change:
            until = min(until, datetime.fromtimestamp(transition.next_change, UTC))
        self._transition = (transition, now, until)
        return transition

    def routes(self) -> list[web.RouteDef]:
        return [
            web.route("*", "/cgi-bin/once", self._wrap(self.once)),
            web.route("*", "/cgi-bin/session", self._wrap(self.session)),
            web.route("*", "/cgi-bin/measure", self._wrap(self.measure)),
            web.route("*", "/cgi-bin/v2/measure", self._wrap(self.v2_measure)),
            web.route("*", "/cgi-bin/v2/weather", self._wrap(self.v2_weather, post_only=False)),
            web.route("*", "/cgi-bin/maint", self._wrap(self.maint, post_only=False)),
            web.route("*", "/cgi-bin/{tail:.*}", self._wrap(self.unknown, post_only=False)),
        ]

    # -- plumbing shared by every endpoint -------------------------------------------------------

    def _wrap(
        self,
        handler: Callable[[web.Request, dict[str, str], Outcome], Awaitable[web.StreamResponse]],
        *,
        post_only: bool = True,
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            received_at = self.clock()
            outcome = Outcome()
            body = b""
            try:
                try:
                    body = await request.read()
                except web.HTTPRequestEntityTooLarge:
                    raise ProtocolError(f"body larger than {protocol.MAX_BODY_BYTES} bytes") from None
                if post_only and request.method != "POST":
                    raise ProtocolError(f"method {request.method} not allowed; the scale POSTs",
                                        protocol.STATUS_UNKNOWN_ACTION)
                form = protocol.parse_form(body) if body else {}
                response = await handler(request, form, outcome)
            except ProtocolError as error:
                outcome = Outcome("refused", error.detail, error.status)
                response = _reply(protocol.status_reply(error.status), error.http_status)
                self._notice(request, logging.WARNING, "refused %s %s from %s: %s; body %s", request.method,
                             Quoted(request.path_qs), request.remote, Quoted(error.detail), Quoted(body))
            except JournalError as error:  # damaged or unwritable: the journal said once, plainly, what to do
                outcome = Outcome("error", str(error), protocol.STATUS_SERVER_ERROR)
                response = _reply(protocol.status_reply(protocol.STATUS_SERVER_ERROR), 500)
                self._notice(request, logging.ERROR, "could not store %s %s from %s: %s", request.method,
                             Quoted(request.path_qs), request.remote, error)
            except Exception as error:  # a bug or a full disk must not take the server down
                outcome = Outcome("error", f"{type(error).__name__}: {error}", protocol.STATUS_SERVER_ERROR)
                response = _reply(protocol.status_reply(protocol.STATUS_SERVER_ERROR), 500)
                self._notice(request, logging.ERROR, "failed %s %s from %s; body %s", request.method,
                             Quoted(request.path_qs), request.remote, Quoted(body), exc_info=True)
            self._log_request(request, received_at, response, outcome, body)
            return response

        return endpoint

    def _notice(self, request: web.Request, level: int, message: str, *args: object, exc_info: bool = False) -> None:
        """A log line about a client's request, within the notice budget of its address."""
        self.notices.notice(time.monotonic(), request.remote or "?", message, *args, level=level, exc_info=exc_info)

    def _log_request(
        self, request: web.Request, received_at: datetime, response: web.StreamResponse, outcome: Outcome,
        body: bytes,
    ) -> None:
        try:
            self.request_log.add(
                received_at=received_at, peer=request.remote, method=request.method,
                path=mask_path(request.path_qs), http_status=response.status, status=outcome.status,
                outcome=outcome.name, detail=outcome.detail, body=mask_form(body),
            )
        except Exception:  # the debug log must never cost a reply
            log.exception("could not write the request log")

    def _open_session(self, mac: str, battery_pct: float | None, peer: str | None) -> str:
        now = time.monotonic()
        while self.sessions and (
            len(self.sessions) >= MAX_SESSIONS
            or next(iter(self.sessions.values())).opened < now - SESSION_TTL_SECONDS
        ):
            self.sessions.popitem(last=False)
        session_id = protocol.new_session_id()
        self.sessions[session_id] = Session(mac, now, battery_pct, peer)
        return session_id

    def _device_model(self, mac: str) -> str | None:
        settings = self.config.devices.get(mac)
        return settings.model if settings else None

    def _device_of(self, sessionid: str | None, mac: str | None, peer: str | None) -> str:
        """The scale a request is from: its MAC, else its session's, else (the WS-50's v2/measure was
        logged with `measuregrps` alone, reference §1.5) the latest session opened from its address."""
        if mac is not None:
            return mac
        session = self.sessions.get(sessionid or "")
        if session is not None:
            return session.mac
        latest = next((s for s in reversed(self.sessions.values()) if peer is not None and s.peer == peer), None)
        if latest is not None:
            return latest.mac
        raise ProtocolError("no macaddress, no known sessionid and no session from this address: cannot tell"
                            " which scale this is")

    async def _ingest(self, readings: list[Reading]) -> list[Measurement]:
        """Stored, or refused like any other bad request (non-zero status, logged, nothing kept) when a
        value or a time is not physically plausible."""
        try:
            return await self.pipeline.ingest_many(readings)
        except Implausible as refusal:
            moment = iso_utc(readings[refusal.index].taken_at)
            raise ProtocolError(f"weigh-in at {moment}: {refusal}", http_status=200) from None

    # -- endpoints -------------------------------------------------------------------------------

    async def once(self, request: web.Request, form: dict[str, str], outcome: Outcome) -> web.StreamResponse:
        if form.get("action") != "get":
            outcome.detail = f"unexpected action {form.get('action')!r}; answered with a nonce anyway"
            self._notice(request, logging.INFO, "once from %s with %s", request.remote, Quoted(outcome.detail))
        return _reply(protocol.status_reply(body={"once": protocol.new_once()}))

    async def session(self, request: web.Request, form: dict[str, str], outcome: Outcome) -> web.StreamResponse:
        action = form.get("action")
        if action == "delete":
            self.sessions.pop(form.get("sessionid", ""), None)
            return _reply(protocol.status_reply())
        if action != "new":
            raise ProtocolError(f"session action {action!r} is unknown", protocol.STATUS_UNKNOWN_ACTION)
        opened = protocol.parse_session_new(form)
        now = self.clock()
        # Not worth an fsync while the scale waits: it re-sends this every session anyway.
        self.pipeline.journal.write_later(lambda tx: tx.record_device(
            device_id=opened.mac, source=SOURCE, seen_at=now, model=self._device_model(opened.mac),
            firmware=str(opened.firmware) if opened.firmware is not None else None,
            battery_pct=opened.battery_pct, manufacturing_id=opened.manufacturing_id,
        ), f"the state of {opened.mac}")
        if opened.extra:
            outcome.detail = f"fields kept as they came: {sorted(opened.extra)}"
        body = protocol.session_new_reply(
            self._open_session(opened.mac, opened.battery_pct, request.remote),
            self._scale_users(now),
            locale=self.config.household.locale,
            gravity_m_s2=self.config.household.gravity_m_s2,
            now=now,
            transition=self.clock_transition(now),
            ind_extra=self.config.withings.ind_extra,
        )
        # DEBUG: a WS-50 opens a session every 30 minutes for its room readings.
        log.debug("session opened for %s (firmware %s, battery %s%%)", opened.mac, opened.firmware,
                  opened.battery_pct)
        return await _chunked(request, body)

    async def start(self) -> None:
        """Read once what every session reply needs: `cr`, when this server first offered each person."""
        now = str(int(self.clock().timestamp()))
        slugs = [person.slug for person in self.config.users]
        self._user_created = await self.pipeline.journal.write(
            lambda tx: {slug: int(tx.meta(f"withings.user_created.{slug}", now)) for slug in slugs})

    def _scale_users(self, now: datetime) -> list[protocol.ScaleUser]:
        """The household as the scale's user list: the same objects from session to session while
        everyone's age (in tenths of years, as sent) and latest weight stay the same."""
        weights = self.pipeline.latest_weights
        changing = tuple((round(age_in_years(person.birth_date, now), 1), weights.get(person.slug, 0.0),
                          self._user_created.get(person.slug, int(now.timestamp()))) for person in self.config.users)
        if self._users is not None and self._users[0] == changing:
            return self._users[1]
        users = [
            protocol.ScaleUser(
                id=withings_user_id(person), short_name=person.short_name, weight_kg=weight,
                height_m=person.height_cm / 100, age_years=age, sex=0 if person.sex == "male" else 1,
                fm=self.config.withings.fm, created=created,
            )
            for person, (age, weight, created) in zip(self.config.users, changing, strict=True)
        ]
        self._users = (changing, users)
        return users

    async def measure(self, request: web.Request, form: dict[str, str], outcome: Outcome) -> web.StreamResponse:
        if form.get("action") != "store":
            raise ProtocolError(f"measure action {form.get('action')!r} is unknown", protocol.STATUS_UNKNOWN_ACTION)
        now = self.clock()
        store = protocol.parse_measure_store(form)
        device = self._device_of(store.sessionid, store.mac, request.remote)
        session = self.sessions.get(store.sessionid or "")
        battery = session.battery_pct if session is not None and session.mac == device else None
        readings = body_readings(store, device, self._device_model(device), now, battery)
        for warning in store.warnings:
            self._notice(request, logging.WARNING, "measure from %s: %s", device, Quoted(warning))
        stored = await self._ingest(readings)
        outcome.detail = f"measurements {[measurement.id for measurement in stored]}"
        return _reply(protocol.status_reply(body={"updatetime": int(now.timestamp())}))

    async def v2_measure(self, request: web.Request, form: dict[str, str], outcome: Outcome) -> web.StreamResponse:
        now = self.clock()
        groups = protocol.parse_v2_measure(form)
        device = self._device_of(*protocol.device_fields(form), request.remote)
        readings = [
            Reading(
                source=SOURCE, kind="environment", device_id=device, device_model=self._device_model(device),
                taken_at=datetime.fromtimestamp(group.meastime, UTC), received_at=now,
                values=group.values, raw=group.raw,
            )
            for group in groups
        ]
        stored = await self._ingest(readings)
        outcome.detail = f"measurements {[measurement.id for measurement in stored]}"
        return _reply(protocol.status_reply())

    async def v2_weather(self, request: web.Request, form: dict[str, str], outcome: Outcome) -> web.StreamResponse:
        # The request was never captured (reference §1.6): answer an empty forecast and keep the body.
        outcome.name = "undocumented"
        self._notice(request, logging.INFO, "v2/weather from %s with fields %s", request.remote, Quoted(form))
        return _reply(protocol.status_reply(body={"series": []}))

    async def maint(self, request: web.Request, form: dict[str, str], outcome: Outcome) -> web.StreamResponse:
        outcome.name = "undocumented"  # fields unknown (reference §1.7)
        self._notice(request, logging.INFO, "maint from %s with fields %s", request.remote, Quoted(form))
        return _reply(protocol.status_reply())

    async def unknown(self, request: web.Request, form: dict[str, str], outcome: Outcome) -> web.StreamResponse:
        outcome.name = "unknown-endpoint"
        self._notice(request, logging.WARNING, "unknown endpoint %s %s from %s answered status 0; fields %s",
                     request.method, Quoted(request.path_qs), request.remote, Quoted(form))
        return _reply(protocol.status_reply())


def body_readings(
    store: protocol.MeasureStore, device: str, model: str | None, now: datetime, battery_pct: float | None = None
) -> list[Reading]:
    """One Reading per weigh-in instant; groups sharing a `meastime` are one weigh-in. `battery_pct` is
    the level the scale reported when it opened the session that delivers these weigh-ins."""
    merged: dict[int, tuple[int | None, list[protocol.Measure]]] = {}
    for group in store.groups:
        userid, measures = merged.setdefault(group.meastime, (group.userid, []))
        measures.extend(group.measures)
    readings = []
    for meastime, (userid, measures) in merged.items():
        values: dict[str, float] = {}
        vendor: dict[str, float] = {}
        raw: dict[str, float] = {}
        for measure in measures:
            if measure.type in protocol.READING_TYPES:
                values[protocol.READING_TYPES[measure.type]] = measure.value
            elif measure.type in protocol.VENDOR_METRIC_TYPES:
                vendor[protocol.VENDOR_METRIC_TYPES[measure.type]] = measure.value
            else:
                raw[f"withings_type_{measure.type}"] = measure.value
        if battery_pct is not None:
            values["battery_pct"] = float(battery_pct)
        water = raw.get(f"withings_type_{protocol.WATER_MASS_TYPE}")
        if water is not None and values.get("weight_kg"):
            vendor["water_pct"] = 100.0 * water / values["weight_kg"]
        readings.append(Reading(
            source=SOURCE, kind="body", device_id=device, device_model=model,
            taken_at=datetime.fromtimestamp(meastime, UTC), received_at=now,
            device_user_id=str(userid) if userid is not None else None,
            values=values, vendor_metrics=vendor, raw=raw,
        ))
    return readings


async def _chunked(request: web.Request, body: bytes) -> web.StreamResponse:
    """The session reply went out chunked, one chunk, in the 2013 capture (reference §1.3);
    HTTP/1.0 forbids chunking, so such a client gets a Content-Length reply instead. A `Response`
    (not a `StreamResponse`) keeps its head until the body is written: head, chunk and terminator
    leave in one write."""
    response = _reply(body)
    if request.version >= (1, 1):
        response.enable_chunked_encoding()
    return response
