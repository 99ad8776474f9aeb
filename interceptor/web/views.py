"""What each page shows, computed on a journal reader thread from a handful of indexed queries.

A view is plain data: the JSON API returns `as_json()` of it and the HTML page renders the very same
object, so the two never disagree. Nothing here touches the event loop; every function takes `now`
and the reader it runs on, and reads only what its page shows (`store.household`).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from interceptor import __version__
from interceptor.ble.frames import SOURCE as BLE_SOURCE
from interceptor.ble.gateways import MODEL as GATEWAY_MODEL
from interceptor.ble.gateways import SOURCE as GATEWAY_SOURCE
from interceptor.config import Config, Person
from interceptor.model import LIVE_SOURCES, METRIC_UNITS, DeviceState, Measurement, Metric, iso_utc, utc_from_unix
from interceptor.store import household
from interceptor.store.database import open_reader
from interceptor.store.household import Cursor
from interceptor.store.journal import Reader
from interceptor.store.measurements import GUEST, Filter
from interceptor.web import chart, words
from interceptor.web.params import RANGES, since

if TYPE_CHECKING:  # dnslib is loaded with the DNS responder, not for the page
    from interceptor.dns.answers import Answered

TABLE_ROWS = 30  # a phone's worth; older ones are a link away
UNCLAIMED_ROWS = 50
SPARK_DAYS = 30
LOW_BATTERY_PCT = 20.0
SILENT_AFTER = timedelta(days=7)
RECENT_REQUESTS = 300  # of the request log's ring, enough for the last conversation of every scale
# A gateway that says it is still here every minute (`interceptor gateway`) is missed after ten; one
# that speaks only when a scale does (older gateways, OpenMQTTGateway/Theengs) only after a scale's week.
GATEWAY_SILENT_AFTER = timedelta(minutes=10)
CONVERSATION_GAP_S = 120.0  # requests from one address closer than this are one conversation
ADDRESS_TYPES = ("A", "AAAA")  # the DNS answers that say where a scale will connect
DNS_VERDICTS = 5  # clients judged on the page, most recent first; the table below lists every answer
ASSIGNED_BY = {"device": "the scale's own user", "weight": "closest recent weight", "manual": "claimed by hand",
               "none": "nobody yet", GUEST: "not a household member"}
EXTRA_METRICS = {"fat": "body_fat_pct", "muscle": "muscle_mass_kg", "water": "water_pct"}


@dataclass(frozen=True)
class MetricLine:
    name: str
    label: str
    value: float
    text: str
    method: str
    method_words: str
    confidence: str
    confidence_words: str

    @classmethod
    def of(cls, name: str, metric: Metric | dict[str, Any], unit: str) -> MetricLine:
        """From a `Metric` or its stored JSON object (the table reads those without building models)."""
        value, method, confidence = ((metric.value, metric.method, metric.confidence) if isinstance(metric, Metric)
                                     else (metric["value"], metric["method"], metric["confidence"]))
        return cls(name, words.label(name), value, words.metric_value(name, value, unit), method,
                   words.metric_method(name, method), confidence, words.confidence(confidence))

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "value": self.value, "unit": METRIC_UNITS.get(self.name, ""), "text": self.text,
                "method": self.method, "method_words": self.method_words, "confidence": self.confidence,
                "confidence_words": self.confidence_words}


@dataclass(frozen=True)
class Change:
    label: str  # "since Tuesday", "7 days", "30 days"
    delta_kg: float | None
    text: str

    def as_json(self) -> dict[str, object]:
        return {"over": self.label, "delta_kg": self.delta_kg, "text": self.text}


@dataclass(frozen=True)
class Card:
    """One person's latest weigh-in as the home page shows it."""

    slug: str
    name: str
    unit: str
    latest: Measurement | None
    weight_text: str
    when_text: str
    changes: list[Change]
    composition: list[MetricLine]  # body fat and muscle, with their method and confidence
    left_out: str  # why body fat or muscle is missing from the latest weigh-in ("" when neither is)
    goal_kg: float | None
    goal_text: str
    sparkline: str

    def as_json(self) -> dict[str, object]:
        latest = self.latest
        return {
            "slug": self.slug, "name": self.name, "unit": self.unit,
            "latest": None if latest is None else {
                "id": latest.id, "taken_at": iso_utc(latest.taken_at), "when": self.when_text,
                "weight_kg": latest.readings.get("weight_kg"), "weight": self.weight_text,
            },
            "changes": [change.as_json() for change in self.changes],
            "composition": [line.as_json() for line in self.composition], "left_out": self.left_out or None,
            "goal_kg": self.goal_kg, "goal": self.goal_text or None,
        }


@dataclass(frozen=True)
class Home:
    cards: list[Card]
    unclaimed: int

    def as_json(self) -> dict[str, object]:
        return {"people": [card.as_json() for card in self.cards], "unclaimed": self.unclaimed}


def card(reader: Reader, config: Config, person: Person, now: datetime) -> Card:
    unit = config.weight_unit(person)
    zone = config.household.zone
    recent = [m for m in reader.measurements(Filter(user=person.slug, kind="body"), limit=2, newest_first=True)
              if "weight_kg" in m.readings]
    goal_text = f"goal {words.weight(person.goal_weight_kg, unit)}" if person.goal_weight_kg else ""
    if not recent:
        return Card(person.slug, person.name, unit, None, "", "no weigh-ins yet", [], [], "", person.goal_weight_kg,
                    goal_text, "")
    latest = recent[0]
    weight = latest.readings["weight_kg"]
    changes = []
    if len(recent) > 1:
        before = recent[1]
        changes.append(_change(f"since {words.moment(before.taken_at, now, zone, clock=False)}",
                               weight - before.readings["weight_kg"], unit))
    for days in (7, 30):
        then = household.weight_at(reader, person.slug, latest.taken_at.timestamp() - days * 86400)
        changes.append(_change(f"{days} days", None if then is None else weight - then[1], unit))
    composition = [MetricLine.of(name, latest.metrics[name], unit)
                   for name in ("body_fat_pct", "muscle_mass_kg") if name in latest.metrics]
    reasons = {latest.refusals[name] for name in ("body_fat_pct", "muscle_mass_kg")
               if name not in latest.metrics and name in latest.refusals}
    left_out = f"No body fat or muscle: {'; '.join(sorted(reasons))}" if reasons else ""
    if person.goal_weight_kg:
        to_go = weight - person.goal_weight_kg
        goal_text += (": reached" if abs(to_go) < 0.05 else
                      f": {words.weight(abs(to_go), unit)} {'to go' if to_go > 0 else 'below it'}")
    days = _day_means(reader, person.slug, (now - timedelta(days=SPARK_DAYS)).timestamp(), now, zone)["weight"]
    return Card(person.slug, person.name, unit, latest, words.weight(weight, unit),
                words.moment(latest.taken_at, now, zone), changes, composition, left_out, person.goal_weight_kg,
                goal_text,
                _sparkline(days))


def _day_means(reader: Reader, slug: str, start: float | None, now: datetime, zone: ZoneInfo, *,
               with_metrics: bool = False) -> dict[str, Any]:
    """Each charted quantity per local day (or per bucket of days, beyond a year), folded by SQLite."""
    first = start if start is not None else household.first_weigh_in(reader, slug)
    if first is None:
        return {"width": 1, "weight": [], **{name: [] for name in EXTRA_METRICS}}
    end = now.timestamp()
    width = chart.bucket_width(datetime.fromtimestamp(first, zone).date(), now.astimezone(zone).date())
    found = household.day_means(reader, slug, first, chart.zone_offsets(zone, first, end), width,
                                with_metrics=with_metrics)
    return {"width": width, "weight": chart.days_from((row[0], row[1]) for row in found),
            **{name: chart.days_from((row[0], row[column]) for row in found)
               for column, name in enumerate(EXTRA_METRICS, start=2)}}


def _change(label: str, delta: float | None, unit: str) -> Change:
    return Change(label, delta, "–" if delta is None else words.change(delta, unit))


def _sparkline(days: list[chart.DayValue]) -> str:
    if len(days) < 2:
        return ""
    low, high = min(d.value for d in days), max(d.value for d in days)
    span = max(high - low, 0.5)
    first, last = days[0].day, days[-1].day
    width = max((last - first).days, 1)
    points = " ".join(f"{(d.day - first).days / width * 100:.1f},{28 - (d.value - low) / span * 26:.1f}"
                      for d in days)
    return (f'<svg class="spark" viewBox="0 0 100 30" preserveAspectRatio="none" aria-hidden="true">'
            f'<polyline points="{points}"/></svg>')


def home(reader: Reader, config: Config, now: datetime) -> Home:
    return Home([card(reader, config, person, now) for person in config.users], household.unclaimed_count(reader))


# -- a person's page --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One weigh-in of the table, with every metric it has and the method behind each."""

    id: int
    taken_at: datetime
    when_text: str
    weight_kg: float | None
    weight_text: str
    readings: dict[str, float]
    device_id: str
    assignment: str
    metrics: dict[str, MetricLine]
    refusals: dict[str, str]
    user: str | None

    @property
    def assigned_by(self) -> str:
        return ASSIGNED_BY.get(self.assignment, self.assignment)

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "taken_at": iso_utc(self.taken_at), "when": self.when_text,
                "weight_kg": self.weight_kg, "weight": self.weight_text, "readings": self.readings,
                "device_id": self.device_id, "user": self.user, "assigned_by": self.assignment,
                "assigned_by_words": self.assigned_by,
                "metrics": {name: line.as_json() for name, line in self.metrics.items()}, "refusals": self.refusals}


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    svg: str
    series: chart.Series


@dataclass(frozen=True)
class PersonPage:
    card: Card
    range_name: str
    shown: tuple[str, ...]
    charts: list[Chart]
    rows: list[Row]
    columns: list[tuple[str, str, str]]  # metric, label, its method when every row shares it (else "")
    in_range: int
    after: Cursor | None
    older: Cursor | None

    def as_json(self) -> dict[str, object]:
        return {
            "person": self.card.as_json(), "range": self.range_name, "show": list(self.shown),
            "charts": {c.name: c.series.as_json() for c in self.charts},
            "weigh_ins": [row.as_json() for row in self.rows], "weigh_ins_in_range": self.in_range,
            "older": self.older.text() if self.older else None,
        }


def row(item: Measurement, unit: str, config: Config) -> Row:
    weight = item.readings.get("weight_kg")
    return Row(item.id, item.taken_at, words.day(item.taken_at, config.household.zone), weight,
               "" if weight is None else words.weight(weight, unit), dict(item.readings), item.device_id,
               item.assignment, {name: MetricLine.of(name, item.metrics[name], unit)
                                 for name in METRIC_UNITS if name in item.metrics}, dict(item.refusals), item.user)


def raw_row(values: tuple, unit: str, config: Config) -> Row:
    """A `measurements.COLUMNS` row straight from its stored JSON: no models, for a page of the table."""
    (identifier, _, _, _, device_id, _, user, assignment, taken_at, _, readings_text, metrics_text,
     refusals_text, _) = values
    readings = json.loads(readings_text)
    metrics = json.loads(metrics_text)
    weight = readings.get("weight_kg")
    moment = utc_from_unix(taken_at)
    return Row(identifier, moment, words.day(moment, config.household.zone), weight,
               "" if weight is None else words.weight(weight, unit), readings, device_id, assignment,
               {name: MetricLine.of(name, metrics[name], unit) for name in METRIC_UNITS if name in metrics},
               json.loads(refusals_text), user)


def person_page(reader: Reader, config: Config, person: Person, now: datetime, range_name: str,
                shown: tuple[str, ...], after: Cursor | None) -> PersonPage:
    unit = config.weight_unit(person)
    zone = config.household.zone
    start = since(range_name, now)
    days = _day_means(reader, person.slug, start.timestamp() if start else None, now, zone, with_metrics=bool(shown))
    width = days["width"]
    span = "all weigh-ins" if start is None else f"the last {RANGES[range_name].days} days"  # type: ignore[union-attr]
    weight_series = chart.series([chart.DayValue(d.day, words.in_unit(d.value, unit)) for d in days["weight"]],
                                 width)
    title = f"Weight of {person.name}, {span}"
    charts = [Chart("weight", title, chart.svg(
        weight_series, title=title, tick_text=lambda v: words.axis_weight(v, unit),
        goal=words.in_unit(person.goal_weight_kg, unit) if person.goal_weight_kg else None,
        goal_text="goal", step_for=chart.stone_step if unit == "st" else chart.nice_step), weight_series)]
    for name in shown:
        metric = EXTRA_METRICS[name]
        to_unit = (lambda v: words.in_unit(v, unit)) if metric.endswith("_kg") else (lambda v: v)
        values = [chart.DayValue(d.day, to_unit(d.value)) for d in days[name]]
        mass_unit = "kg" if unit == "kg" else "lb"
        suffix = mass_unit if metric.endswith("_kg") else "%"
        title = f"{words.label(metric)} of {person.name}, {span}"
        series = chart.series(values, width)
        charts.append(Chart(name, title, chart.svg(series, title=title, tick_text=lambda v, s=suffix: f"{v:g} {s}",
                                                   css_class=f"chart {name}"), series))
    where = Filter(user=person.slug, kind="body", since=start)
    found = household.raw_page(reader, where, limit=TABLE_ROWS + 1, after=after, newest_first=True)
    older = None
    if len(found) > TABLE_ROWS:
        found = found[:TABLE_ROWS]
        older = Cursor(found[-1][8], found[-1][0])
    rows = [raw_row(values, unit, config) for values in found]
    methods: dict[str, set[str]] = {}
    for item in rows:
        for name, line in item.metrics.items():
            methods.setdefault(name, set()).add(line.method_words)
    # A method shared by the whole column is said once, in its head: the same words in every cell are bytes
    # on a phone, and noise to read.
    columns = [(name, words.label(name), next(iter(methods[name])) if len(methods[name]) == 1 else "")
               for name in METRIC_UNITS if name in methods]
    return PersonPage(card(reader, config, person, now), range_name, shown, charts, rows, columns,
                      reader.count(where), after, older)


# -- weigh-ins waiting for a person ------------------------------------------------------------------


@dataclass(frozen=True)
class Waiting:
    measurement: Measurement
    when_text: str
    weight_text: str
    likely: list[tuple[str, str, str]]  # slug, name, "last 72.1 kg": people, nearest recent weight first

    def as_json(self) -> dict[str, object]:
        item = self.measurement
        return {"id": item.id, "taken_at": iso_utc(item.taken_at), "when": self.when_text,
                "weight_kg": item.readings.get("weight_kg"), "weight": self.weight_text,
                "device_id": item.device_id, "device_model": item.device_model,
                "people": [{"slug": slug, "name": name, "hint": hint} for slug, name, hint in self.likely]}


@dataclass(frozen=True)
class Unclaimed:
    waiting: list[Waiting]
    total: int
    older: Cursor | None
    undo: Row | None  # the weigh-in just claimed, while it is still as the claim left it
    undo_name: str | None  # whom it is filed under, by the name the household gave them (None: a guest's)

    def as_json(self) -> dict[str, object]:
        return {"weigh_ins": [item.as_json() for item in self.waiting], "total": self.total,
                "older": self.older.text() if self.older else None}


def unclaimed(reader: Reader, config: Config, now: datetime, latest_weights: dict[str, float],
              after: Cursor | None, claimed: int | None) -> Unclaimed:
    unit = config.household.weight_unit
    zone = config.household.zone
    found = household.unclaimed(reader, limit=UNCLAIMED_ROWS + 1, after=after)
    older = None
    if len(found) > UNCLAIMED_ROWS:
        found = found[:UNCLAIMED_ROWS]
        older = Cursor(found[-1].taken_at.timestamp(), found[-1].id)
    waiting = []
    for item in found:
        weight = item.readings.get("weight_kg")
        people = sorted(config.users, key=lambda p: abs(latest_weights[p.slug] - weight)
                        if weight is not None and p.slug in latest_weights else float("inf"))
        likely = [(p.slug, p.name, f"last {words.weight(latest_weights[p.slug], config.weight_unit(p))}"
                   if p.slug in latest_weights else "no weigh-in yet") for p in people]
        waiting.append(Waiting(item, words.moment(item.taken_at, now, zone),
                               "" if weight is None else words.weight(weight, unit), likely))
    undo = undo_name = None
    if claimed is not None:
        just = reader.measurement(claimed)
        if just is not None and just.kind == "body" and just.assignment in ("manual", GUEST):
            person = config.person(just.user) if just.user else None
            undo = row(just, config.weight_unit(person) if person else unit, config)
            undo_name = person.name if person else just.user  # the slug only for someone no longer configured
    return Unclaimed(waiting, household.unclaimed_count(reader), older, undo, undo_name)


# -- devices ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conversation:
    """The latest burst of requests from one address (a scale's once, session, measure, ...)."""

    peer: str
    started: float
    ended: float
    requests: int
    paths: dict[str, int]  # path → requests, in the order first asked
    problems: list[str]  # "refused /cgi-bin/measure: <detail>"
    device_id: str | None

    def as_json(self) -> dict[str, object]:
        return {"peer": self.peer, "started": _iso(self.started), "ended": _iso(self.ended),
                "requests": self.requests, "paths": self.paths, "problems": self.problems,
                "device_id": self.device_id}


@dataclass(frozen=True)
class Device:
    state: DeviceState
    name: str
    last_seen_text: str
    last_weigh_in: str | None
    conversation: Conversation | None
    rssi_dbm: int | None
    warnings: list[str]

    def as_json(self) -> dict[str, object]:
        return {**self.state.as_json(), "name": self.name, "last_seen_text": self.last_seen_text,
                "last_weigh_in": self.last_weigh_in,
                "last_conversation": self.conversation.as_json() if self.conversation else None,
                "rssi_dbm": self.rssi_dbm, "warnings": self.warnings}


@dataclass(frozen=True)
class Imported:
    """A source of imported history (an export file, a vendor cloud): not a scale that talks to this box,
    so no battery, no silence to warn about; what it brought, and when it was last imported."""

    state: DeviceState  # its last_seen is when its weigh-ins were last imported
    name: str
    weigh_ins: int
    last_import_text: str

    def as_json(self) -> dict[str, object]:
        return {**self.state.as_json(), "name": self.name, "weigh_ins": self.weigh_ins,
                "last_import_text": self.last_import_text}


@dataclass(frozen=True)
class Gateway:
    """A BLE gateway (interceptor/ble/gateways.py): what delivers the Bluetooth scales' frames, so its
    silence is a scale's silence to come."""

    state: DeviceState  # address and frames delivered; firmware: the version it runs
    name: str
    last_seen_text: str
    warnings: list[str]

    def as_json(self) -> dict[str, object]:
        return {**self.state.as_json(), "name": self.name, "last_seen_text": self.last_seen_text,
                "warnings": self.warnings}


@dataclass(frozen=True)
class Devices:
    devices: list[Device]  # the scales speaking now (`model.LIVE_SOURCES`)
    gateways: list[Gateway]
    imported: list[Imported]

    def as_json(self) -> dict[str, object]:
        return {"devices": [device.as_json() for device in self.devices],
                "gateways": [gateway.as_json() for gateway in self.gateways],
                "imported": [source.as_json() for source in self.imported]}


def _iso(seconds: float) -> str:
    return iso_utc(utc_from_unix(seconds))


def conversations(data_dir: Path) -> list[Conversation]:
    """The latest conversation of each address in the request log (the newest first)."""
    path = data_dir / "requests.sqlite"
    if not path.exists():
        return []
    try:
        db = open_reader(path)
    except Exception:  # a broken debug log must not break the page; the journal is what matters
        return []
    try:
        found = db.execute("SELECT received_at, peer, path, outcome, detail, substr(body, 1, 600) FROM requests"
                           " ORDER BY id DESC LIMIT ?", (RECENT_REQUESTS,)).fetchall()
    except sqlite3.Error:
        return []
    finally:
        db.close()
    latest: dict[str, dict[str, Any]] = {}
    done: set[str] = set()
    for received_at, peer, path_text, outcome, detail, body in found:
        peer = peer or "unknown"
        if peer in done:
            continue
        entry = latest.get(peer)
        if entry is not None and entry["started"] - received_at > CONVERSATION_GAP_S:
            done.add(peer)
            continue
        if entry is None:
            entry = latest[peer] = {"started": received_at, "ended": received_at, "paths": {}, "problems": [],
                                    "requests": 0, "device_id": None}
        entry["started"] = received_at
        entry["requests"] += 1
        route = path_text.split("?", 1)[0]
        count = entry["paths"].pop(route, 0) + 1
        entry["paths"] = {route: count, **entry["paths"]}
        if outcome not in ("ok",):
            entry["problems"].insert(0, f"{outcome} {route}" + (f": {detail}" if detail else ""))
        entry["device_id"] = entry["device_id"] or _mac_in(bytes(body))
    return [Conversation(peer, e["started"], e["ended"], e["requests"], e["paths"], e["problems"][-5:], e["device_id"])
            for peer, e in latest.items()]


def _mac_in(body: bytes) -> str | None:
    """The scale's MAC as its requests name it (`macaddress=` or `auth=`), for matching a device."""
    for part in body.split(b"&"):
        key, _, value = part.partition(b"=")
        if key in (b"macaddress", b"auth") and len(value) == 17:
            return value.decode("ascii", "replace").lower()
    return None


def devices(reader: Reader, config: Config, now: datetime) -> Devices:
    """Scales speaking now, with what to worry about; imported history apart, since an export file has
    no battery and falls silent by nature (the Home Assistant and Garmin sinks draw the same line)."""
    talks = {c.device_id: c for c in conversations(config.data_dir) if c.device_id}
    zone = config.household.zone
    states = reader.devices()
    scales = [_scale(reader, config, state, now, talks.get(state.device_id.lower()))
              for state in states if state.source in LIVE_SOURCES]
    ble_scales = bool(config.ble.devices) or any(state.source == BLE_SOURCE for state in states)
    gateways = [_gateway(config, state, now, ble_scales) for state in states if state.source == GATEWAY_SOURCE]
    imported = [Imported(state, _device_name(config, state), household.measurements_of_device(reader, state.device_id),
                         words.moment(state.last_seen, now, zone))
                for state in states if state.source not in LIVE_SOURCES | {GATEWAY_SOURCE}]
    return Devices(scales, gateways, imported)


def _gateway(config: Config, state: DeviceState, now: datetime, ble_scales: bool) -> Gateway:
    """A gateway, with a warning when it has been silent for long while there are BLE scales to hear."""
    heartbeat = state.model == GATEWAY_MODEL and state.firmware is not None
    silent = now - state.last_seen
    warnings = []
    if ble_scales and silent > (GATEWAY_SILENT_AFTER if heartbeat else SILENT_AFTER):
        warnings.append(f"not heard from for {words.ago(silent.total_seconds())}: is it running, and can it reach"
                        " this server? Bluetooth weigh-ins wait for it")
    return Gateway(state, state.device_id.removeprefix(f"{GATEWAY_SOURCE}:"),
                   f"{words.moment(state.last_seen, now, config.household.zone)}"
                   f" ({words.ago(silent.total_seconds())} ago)", warnings)


def _device_name(config: Config, state: DeviceState) -> str:
    """The name the household gave it in `[devices]`, else what it calls itself, else its address."""
    settings = config.devices.get(state.device_id)
    return (settings.name if settings and settings.name else None) or state.model or state.device_id


def _scale(reader: Reader, config: Config, state: DeviceState, now: datetime, talk: Conversation | None) -> Device:
    """A scale speaking now, with the warnings a person can act on (batteries, network, refusals)."""
    zone = config.household.zone
    last = household.last_measurement_of_device(reader, state.device_id)
    warnings = []
    if state.battery_pct is not None and state.battery_pct < LOW_BATTERY_PCT:
        warnings.append(f"battery at {state.battery_pct:.0f} %: replace the batteries soon")
    silent = now - state.last_seen
    if silent > SILENT_AFTER:
        warnings.append(f"not heard from for {words.ago(silent.total_seconds())}: is it on the network, and does"
                        " its DNS still point here? (see Health)")
    if talk is not None and talk.problems:
        warnings.append(f"its last conversation had problems: {talk.problems[-1]}")
    return Device(state, _device_name(config, state), f"{words.moment(state.last_seen, now, zone)}"
                                                      f" ({words.ago(silent.total_seconds())} ago)",
                  words.moment(last.taken_at, now, zone) if last else None, talk, state.rssi_dbm, warnings)


# -- health -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    sink: str
    items: int
    oldest_text: str | None
    oldest_enqueued_at: float | None  # Unix seconds: the API gives it in ISO 8601 next to the words
    attempts: int
    last_error: str | None

    def as_json(self) -> dict[str, object]:
        return {"sink": self.sink, "items": self.items, "oldest": self.oldest_text,
                "oldest_enqueued_at": _iso(self.oldest_enqueued_at) if self.oldest_enqueued_at is not None else None,
                "attempts": self.attempts, "last_error": self.last_error}


@dataclass(frozen=True)
class Verdict:
    ok: bool
    text: str

    def as_json(self) -> dict[str, object]:
        return {"ok": self.ok, "text": self.text}


@dataclass(frozen=True)
class Health:
    version: str
    verdicts: list[Verdict]
    dns_enabled: bool
    dns_answers: list[Answered]
    conversations: list[Conversation]
    backlogs: list[Backlog]
    journal_bytes: int
    last_weigh_in: str | None
    last_weigh_in_at: datetime | None  # the moment `last_weigh_in` says in words

    def as_json(self) -> dict[str, object]:
        return {"version": self.version, "verdicts": [v.as_json() for v in self.verdicts],
                "dns": {"enabled": self.dns_enabled, "answers": [a.as_json() for a in self.dns_answers]},
                "conversations": [c.as_json() for c in self.conversations],
                "outbox": [b.as_json() for b in self.backlogs],
                "journal": {"bytes": self.journal_bytes, "last_weigh_in": self.last_weigh_in,
                            "last_weigh_in_at": iso_utc(self.last_weigh_in_at) if self.last_weigh_in_at else None}}


def _file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def dns_verdicts(asked: list[Answered], now: datetime) -> list[Verdict]:
    """One verdict per client and name, newest first, judged on its address answers (A and AAAA) only.

    A client that got an address for the name by either type can reach us: an IPv4-only box answers
    AAAA with no address, and the scale then uses the A answer, so judging the newest answer alone
    raised a false alarm whenever the AAAA came last. No address at all is a warning unless only
    AAAA was asked (the same IPv4-only case, not a fault of this box). Other types (HTTPS, TXT) say
    nothing about where the scale will connect."""
    by_client: dict[tuple[str, str], list[Answered]] = {}
    for answer in asked:  # newest first, so each list is too
        if answer.qtype in ADDRESS_TYPES:
            by_client.setdefault((answer.client, answer.name), []).append(answer)
    verdicts = []
    for (client, name), answers in list(by_client.items())[:DNS_VERDICTS]:
        carried = [a for a in answers if a.addresses]
        shown = (carried or answers)[0]
        told = ", ".join(shown.addresses) or f"no address ({shown.rcode})"
        ok = bool(carried) or all(a.qtype == "AAAA" for a in answers)
        verdicts.append(Verdict(ok, f"{client} asked for {name} {words.ago(now.timestamp() - shown.last_seen)}"
                                    f" ago and was told {told}"))
    return verdicts


def health(reader: Reader, config: Config, now: datetime, sinks: list[str], dns_enabled: bool,
           dns_answers: list[Answered], names: tuple[str, ...]) -> Health:
    zone = config.household.zone
    verdicts = []
    backlogs = []
    for sink in sinks:
        queued = reader.backlog(sink)
        oldest = (words.ago(now.timestamp() - queued.oldest_enqueued_at)
                  if queued.oldest_enqueued_at is not None else None)
        backlogs.append(Backlog(sink, queued.items, oldest, queued.oldest_enqueued_at, queued.attempts,
                                queued.last_error))
        if queued.items == 0:
            verdicts.append(Verdict(True, f"{sink}: everything delivered"))
        else:
            error = f"; last error: {queued.last_error}" if queued.last_error else ""
            verdicts.append(Verdict(queued.attempts == 0,
                                    f"{sink}: {queued.items} item(s) waiting for {oldest}{error}"))
    asked = [a for a in dns_answers if a.name in names]
    if dns_enabled:
        if asked:
            verdicts += dns_verdicts(asked, now)
        else:
            verdicts.append(Verdict(False, f"nobody has asked this DNS responder for {', '.join(names)} since it"
                                           " started: does the router (or the scale) use this box as its DNS?"))
    talks = conversations(config.data_dir)
    for talk in talks[:5]:
        when = words.ago(now.timestamp() - talk.ended)
        if talk.problems:
            verdicts.append(Verdict(False, f"{talk.peer} talked {when} ago; {talk.problems[-1]}"))
        else:
            verdicts.append(Verdict(True, f"{talk.peer} talked {when} ago: {talk.requests} request(s), all answered"))
    latest = next(reader.measurements(Filter(kind="body"), limit=1, newest_first=True), None)
    return Health(__version__, verdicts, dns_enabled, dns_answers, talks, backlogs,
                  _file_bytes(config.data_dir / "journal.sqlite"),
                  words.moment(latest.taken_at, now, zone) if latest else None, latest.taken_at if latest else None)
