"""The MQTT sink's renderer: the state documents a journal change leaves behind, sans-I/O.

A state topic holds one retained JSON document: a person's latest weigh-in, a scale's latest
battery, firmware and room reading, a gateway's last delivery, the household's unassigned weigh-ins.
It is rendered inside the transaction that made the change (`store.outbox.Renderer`), so it reads
what is true after it: the person a weigh-in moved from gets their now-latest weigh-in (or an empty
document), a weigh-in imported from years ago changes nobody's current state.

Each outbox item carries the journal's `epoch` (a random id made once per journal) and a `seq` that
grows with every item queued, and so does every document in it. On connect the sink reads its own
retained documents back and skips any message whose topic already holds that epoch with a `seq` at
least as high, or the same document: a crash between "published" and "marked delivered" publishes
nothing twice, and an older document never overwrites a newer one.

The outbox only says what changed. On every connection the sink also makes sure the broker holds the
state as the journal stands (`current_states`): a journal older than `[mqtt]`, or a broker that lost
its retained messages, would otherwise leave Home Assistant with Unknown until the next weigh-in.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from interceptor.ble.gateways import SOURCE as GATEWAY_SOURCE
from interceptor.homeassistant.entities import PERSON, ROOM, SCALE
from interceptor.homeassistant.topics import Topics
from interceptor.model import LIVE_SOURCES, DeviceState, Measurement
from interceptor.store import household
from interceptor.store.journal import DeviceReport, Filter, Reader, Tx

SINK = "mqtt"
SEQUENCE_KEY = "mqtt.seq"
EPOCH_KEY = "mqtt.epoch"
# A retained document bigger than this is not one of ours: it is not parsed on read-back.
MAX_DOCUMENT_BYTES = 64 * 1024

# Only scales speaking now (`model.LIVE_SOURCES`) make states: Home Assistant cannot date a state in
# the past, so a decade of imported history would only be a decade of "new" states at once.
# Readings are measured, not computed: their "method" is the device itself.
MEASURED = {"method": "measured", "confidence": "device"}


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 with an explicit UTC offset, which Home Assistant's timestamp sensors parse."""
    return None if moment is None else moment.isoformat()


def person_document(measurement: Measurement | None) -> dict[str, Any]:
    """Every person key, null where the weigh-in has no value; `details` says how each value was
    obtained (method, confidence) or why it is missing (the pipeline's refusal)."""
    values: dict[str, Any] = {entity.key: None for entity in PERSON}
    details: dict[str, dict[str, Any]] = {entity.key: {} for entity in PERSON}
    document: dict[str, Any] = {"measurement_id": None, **values, "details": details}
    if measurement is None:
        return document
    document["measurement_id"] = measurement.id
    general = measurement.refusals.get("composition")
    for entity in PERSON:
        source = entity.source
        if source is None:
            continue
        if source in measurement.readings:
            document[entity.key] = measurement.readings[source]
            details[entity.key] = dict(MEASURED)
        elif source in measurement.metrics:
            metric = measurement.metrics[source]
            document[entity.key] = metric.value
            details[entity.key] = {"method": metric.method, "confidence": metric.confidence}
        elif source in measurement.refusals or general:
            details[entity.key] = {"reason": measurement.refusals.get(source, general)}
    document["last_measurement_time"] = iso(measurement.taken_at)
    details["weight"].update(measurement_id=measurement.id, taken_at=iso(measurement.taken_at),
                             device_id=measurement.device_id, device_model=measurement.device_model,
                             source=measurement.source, assigned_by=measurement.assignment)
    return document


def unassigned_document(count: int, latest: Measurement | None) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    if latest is not None:
        summary = {"measurement_id": latest.id, "weight_kg": latest.readings.get("weight_kg"),
                   "taken_at": iso(latest.taken_at), "device_id": latest.device_id,
                   "device_model": latest.device_model}
    return {"count": count, "latest": summary}


def unassigned_now(reader: Reader) -> dict[str, Any]:
    """The weigh-ins waiting for a person, as the household page counts them (not hidden guests')."""
    latest = next(iter(household.unclaimed(reader, limit=1)), None)
    return unassigned_document(household.unclaimed_count(reader), latest)


def device_document(reader: Reader, device_id: str) -> dict[str, Any]:
    state = reader.device(device_id)
    room = _newest(reader, Filter(device_id=device_id, kind="environment"))
    weigh_in = _newest(reader, Filter(device_id=device_id, kind="body"))
    keys = [entity.key for entity in (*SCALE, *ROOM)]
    document: dict[str, Any] = {key: None for key in keys}
    details: dict[str, dict[str, Any]] = {key: {} for key in keys}
    if state is not None:
        document.update(battery=state.battery_pct, firmware=state.firmware, last_seen=iso(state.last_seen))
    if weigh_in is not None:
        document["last_weigh_in"] = iso(weigh_in.taken_at)
        details["last_weigh_in"] = {"measurement_id": weigh_in.id}
    if room is not None:
        for entity in ROOM:
            if entity.source in room.readings:
                document[entity.key] = room.readings[entity.source]
                details[entity.key] = {**MEASURED, "measured_at": iso(room.taken_at)}
    return {**document, "details": details}


def gateway_document(state: DeviceState | None) -> dict[str, Any]:
    """A gateway's last delivery (or "still here"), with its address and frames as attributes."""
    if state is None:
        return {"last_seen": None, "firmware": None, "details": {"last_seen": {}}}
    return {"last_seen": iso(state.last_seen), "firmware": state.firmware,
            "details": {"last_seen": {"address": state.address, "frames": state.frames}}}


def _newest(reader: Reader, where: Filter) -> Measurement | None:
    return next(iter(reader.measurements(where, limit=1, newest_first=True)), None)


def latest_weigh_in(reader: Reader, user: str) -> Measurement | None:
    """A person's latest weigh-in with a weight: a reading without one (a WS-50's heart rate sent on
    its own) is no weigh-in to show. Streams newest first, stops at the first."""
    where = Filter(user=user, kind="body")
    return next((m for m in reader.measurements(where, newest_first=True) if "weight_kg" in m.readings), None)


def _after(a: Measurement, b: Measurement) -> bool:
    return (a.taken_at, a.id) > (b.taken_at, b.id)


@dataclass(frozen=True)
class Stamp:
    """Which journal a document came from and how late in its outbox."""

    epoch: str
    seq: int

    def covers(self, other: Stamp) -> bool:
        """This document is `other` or newer: publishing `other` would repeat or regress."""
        return self.epoch == other.epoch and self.seq >= other.seq


@dataclass(frozen=True)
class Held:
    """One of our documents as the broker holds it: its stamp, and what it says without the stamp
    (the same state rendered again carries another stamp and must still count as the same)."""

    stamp: Stamp
    content: dict[str, Any]

    def covers(self, other: Held) -> bool:
        """Publishing `other` would repeat what the broker holds or take it back to an older state."""
        return self.stamp.covers(other.stamp) or self.content == other.content


def held_of(payload: bytes | str) -> Held | None:
    """One of our retained documents; None for anything else (bounded, never raises)."""
    if len(payload) > MAX_DOCUMENT_BYTES:
        return None
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    epoch, seq = document.pop("epoch", None), document.pop("seq", None)
    if not isinstance(epoch, str) or isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        return None
    return Held(Stamp(epoch, seq), document)


def encode(stamp: Stamp, document: dict[str, Any]) -> str:
    """A document as published: its stamp first, then its keys."""
    return json.dumps({"epoch": stamp.epoch, "seq": stamp.seq, **document}, ensure_ascii=False,
                      separators=(",", ":"))


def journal_epoch(tx: Tx) -> str:
    """This journal's epoch, made the first time anything asks for it."""
    return tx.meta(EPOCH_KEY, secrets.token_hex(8))


def current_states(reader: Reader, topics: Topics, people: Iterable[str], epoch: str,
                   handled: int) -> list[tuple[str, str]]:
    """Every state document as the journal stands now, for the sink to publish on connecting: each
    person's latest weigh-in (nothing for a person never weighed, whose entities stay Unknown), each
    scale (not the imported sources), each gateway, the unassigned weigh-ins. Stamped with the last `seq` queued, as
    they show every item up to it.

    A topic an outbox item after `handled` (the sender has not published it yet) will publish is left
    out: the outbox brings it up to date itself, one weigh-in after the other, and a current document
    published first would cover (and so skip) the weigh-ins made while the broker was away."""
    with reader.consistent():  # the documents, the last seq and what the outbox owes, at one moment
        stamp = Stamp(epoch, int(reader.meta_get(SEQUENCE_KEY) or 0))
        owed = _owed_topics(reader, handled)
        documents = [(topics.person(slug), person_document(latest)) for slug in people
                     if (latest := latest_weigh_in(reader, slug)) is not None]
        documents += [(topics.device(device.device_id), device_document(reader, device.device_id))
                      for device in reader.devices() if device.source in LIVE_SOURCES]
        documents += [(topics.device(device.device_id), gateway_document(device))
                      for device in reader.devices(GATEWAY_SOURCE)]
        documents.append((topics.unassigned, unassigned_now(reader)))
        return [(topic, encode(stamp, document)) for topic, document in documents if topic not in owed]


def _owed_topics(reader: Reader, handled: int) -> set[str]:
    owed: set[str] = set()
    for payload in reader.outbox_payloads(SINK):
        item = json.loads(payload)
        if item["seq"] > handled:
            owed.update(topic for topic, _ in item["messages"])
    return owed


class StateRenderer:
    """`store.outbox.Renderer` for the MQTT sink. An item's payload is
    `{"epoch", "seq", "messages": [[topic, document], ...]}`, published in that order."""

    def __init__(self, base_topic: str) -> None:
        self.topics = Topics(base_topic, "")

    # -- what each change touches ---------------------------------------------------------------

    def measurement(self, measurement: Measurement, tx: Tx) -> str | None:
        if measurement.source not in LIVE_SOURCES:
            return None
        messages: list[tuple[str, dict[str, Any]]] = []
        if measurement.kind == "body":
            if measurement.user is None:
                messages.append(self._unassigned(tx))
            else:
                latest = latest_weigh_in(tx, measurement.user)
                if latest is not None and latest.id == measurement.id:
                    messages.append((self.topics.person(measurement.user), person_document(measurement)))
        messages.append((self.topics.device(measurement.device_id), device_document(tx, measurement.device_id)))
        return self._item(tx, messages)

    def revision(self, old: Measurement, new: Measurement, tx: Tx) -> str | None:
        messages: list[tuple[str, dict[str, Any]]] = []
        if new.user is not None:
            latest = latest_weigh_in(tx, new.user)
            if latest is not None and latest.id == new.id:
                messages.append((self.topics.person(new.user), person_document(new)))
        if old.user is not None and old.user != new.user and "weight_kg" in old.readings:
            latest = latest_weigh_in(tx, old.user)
            if latest is None or _after(old, latest):  # it was their latest: show what is now
                messages.append((self.topics.person(old.user), person_document(latest)))
        if old.user is None or new.user is None:
            messages.append(self._unassigned(tx))
        return self._item(tx, messages)

    def device(self, report: DeviceReport, tx: Tx) -> str | None:
        document = (gateway_document(tx.device(report.device_id)) if report.source == GATEWAY_SOURCE
                    else device_document(tx, report.device_id))
        return self._item(tx, [(self.topics.device(report.device_id), document)])

    def retraction(self, old: Measurement, new: Measurement) -> dict[str, str] | None:
        return None  # a state is replaced, never retracted: `revision` publishes what replaces it

    # -- rendering ------------------------------------------------------------------------------

    def _unassigned(self, tx: Tx) -> tuple[str, dict[str, Any]]:
        return self.topics.unassigned, unassigned_now(tx)

    @staticmethod
    def _item(tx: Tx, messages: list[tuple[str, dict[str, Any]]]) -> str | None:
        if not messages:
            return None
        stamp = Stamp(journal_epoch(tx), tx.next_in_sequence(SEQUENCE_KEY))
        published = [[topic, encode(stamp, document)] for topic, document in messages]
        return json.dumps({"epoch": stamp.epoch, "seq": stamp.seq, "messages": published}, ensure_ascii=False,
                          separators=(",", ":"))
