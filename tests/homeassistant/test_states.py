"""What each journal change queues for Home Assistant: the states it leaves behind, in order.

A real journal and pipeline, in-process; the outbox items are read back as the MQTT sink reads them."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from interceptor.config import load_config
from interceptor.homeassistant.states import SINK, StateRenderer
from interceptor.model import Reading
from interceptor.pipeline import Pipeline
from interceptor.store.journal import Journal
from tests.homeassistant.conftest import mqtt_toml

SCALE = "00:24:e4:06:59:dc"
FRED = "2507298"  # Fred's withings_user_id: the scale attributes by it
NOW = int(time.time())


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    path = tmp_path / "interceptor.toml"
    path.write_text(mqtt_toml("mqtt://127.0.0.1:1883"), encoding="utf-8")
    config = load_config(path, environ={}, overrides={"data_dir": str(tmp_path / "data")})
    journal = Journal(config.data_dir / "journal.sqlite", {SINK: StateRenderer("interceptor")})
    yield Pipeline(journal, config)
    journal.close()


def weigh_in(seconds_ago: int, weight_kg: float, user: str | None = None) -> Reading:
    moment = datetime.fromtimestamp(NOW - seconds_ago, UTC)
    return Reading(source="withings", device_id=SCALE, device_model="WS-50", taken_at=moment, received_at=moment,
                   device_user_id=user, values={"weight_kg": weight_kg, "impedance_ohm": 500.0})


class Outbox:
    """The MQTT items queued so far, taken in order as the sink would take them."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.journal = pipeline.journal
        self.after = 0
        self.seqs: list[int] = []

    async def take(self) -> dict[str, dict]:
        """The documents queued since the last call, latest per topic."""
        batch = await self.journal.read(lambda reader: reader.outbox_batch(SINK, 1000, time.time(), self.after))
        if batch is None:
            return {}
        self.after = batch.last_id
        found: dict[str, dict] = {}
        for payload in batch.payloads:
            item = json.loads(payload)
            self.seqs.append(item["seq"])
            for topic, document in item["messages"]:
                found[topic.removeprefix("interceptor/")] = json.loads(document)
        return found


async def test_a_weigh_in_updates_its_person_and_scale(pipeline: Pipeline) -> None:
    outbox = Outbox(pipeline)
    stored = await pipeline.ingest(weigh_in(60, 86.1, FRED))
    states = await outbox.take()
    assert set(states) == {"person/fed/state", "device/0024e40659dc/state"}
    fred = states["person/fed/state"]
    assert fred["measurement_id"] == stored.id and fred["weight"] == 86.1 and fred["impedance"] == 500.0
    assert fred["bmi"] == pytest.approx(86.1 / 2.0**2)
    assert fred["details"]["bmi"] == {"method": "bmi", "confidence": "anthropometric"}
    assert fred["heart_rate"] is None  # the scale sent none: unknown, not 0
    assert states["device/0024e40659dc/state"]["last_weigh_in"] == fred["last_measurement_time"]

    # An older weigh-in (an import, a late re-send) is history: nobody's current state changes.
    await pipeline.ingest(weigh_in(86400, 87.0, FRED))
    assert set(await outbox.take()) == {"device/0024e40659dc/state"}
    assert outbox.seqs == sorted(outbox.seqs) and len(set(outbox.seqs)) == len(outbox.seqs)


async def test_a_claim_moves_the_state_from_one_person_to_the_other(pipeline: Pipeline) -> None:
    outbox = Outbox(pipeline)
    earlier = await pipeline.ingest(weigh_in(7200, 86.0, FRED))
    guest = await pipeline.ingest(weigh_in(60, 54.35, "424242"))  # nobody has that id, nobody is near
    states = await outbox.take()
    assert states["household/unassigned/state"]["count"] == 1
    assert states["household/unassigned/state"]["latest"]["measurement_id"] == guest.id

    await pipeline.assign(guest.id, "fed")  # a mistake: it was Franziska
    states = await outbox.take()
    assert states["person/fed/state"]["measurement_id"] == guest.id
    assert states["household/unassigned/state"] == {**states["household/unassigned/state"], "count": 0, "latest": {}}

    await pipeline.assign(guest.id, "fra")
    states = await outbox.take()
    assert states["person/fra/state"]["measurement_id"] == guest.id
    assert states["person/fra/state"]["bmi"] == pytest.approx(54.35 / 1.61**2)
    # Fred is back to the weigh-in that is now his latest.
    assert states["person/fed/state"]["measurement_id"] == earlier.id
    assert "household/unassigned/state" not in states

    await pipeline.assign(earlier.id, None)  # Fred's only weigh-in was a guest's too
    states = await outbox.take()
    assert states["person/fed/state"]["measurement_id"] is None and states["person/fed/state"]["weight"] is None
    assert states["household/unassigned/state"]["count"] == 1


async def test_a_recompute_republishes_only_the_latest(pipeline: Pipeline) -> None:
    outbox = Outbox(pipeline)
    for days in (3, 2, 1):
        await pipeline.ingest(weigh_in(86400 * days, 86.0 + days, FRED))
    await outbox.take()
    assert await pipeline.recompute("fed") == 3
    states = await outbox.take()
    assert set(states) == {"person/fed/state"} and states["person/fed/state"]["weight"] == 87.0


async def test_a_reading_without_a_weight_is_no_weigh_in_to_show(pipeline: Pipeline) -> None:
    """A WS-50 can send a heart rate in a group of its own: the person's weight must not turn unknown."""
    outbox = Outbox(pipeline)
    weighed = await pipeline.ingest(weigh_in(600, 86.1, FRED))
    await outbox.take()
    moment = datetime.fromtimestamp(NOW - 300, UTC)
    await pipeline.ingest(Reading(source="withings", device_id=SCALE, taken_at=moment, received_at=moment,
                                  device_user_id=FRED, values={"heart_rate_bpm": 64.0}))
    assert set(await outbox.take()) == {"device/0024e40659dc/state"}
    guest = await pipeline.ingest(weigh_in(60, 54.35, "424242"))
    await pipeline.assign(weighed.id, None)  # Fred's weigh-in was a guest's; his heart rate stays his
    states = await outbox.take()
    assert states["person/fed/state"]["measurement_id"] is None
    assert states["household/unassigned/state"]["latest"]["measurement_id"] == guest.id


async def test_imported_history_is_not_news(pipeline: Pipeline) -> None:
    """A decade imported from an export file would be a decade of "new" states at once, each dated now."""
    outbox = Outbox(pipeline)
    for day, source in enumerate(("import", "zepp", "xiaomi-home")):  # export files, vendor clouds
        moment = datetime.fromtimestamp(NOW - 86400 * (3 - day), UTC)
        await pipeline.ingest(Reading(source=source, device_id=f"{source}:fed", taken_at=moment,
                                      received_at=moment, device_user_id=FRED, values={"weight_kg": 86.0 + day}))
    assert await outbox.take() == {}
    await pipeline.ingest(weigh_in(60, 85.0, FRED))  # the next weigh-in on the scale is news again
    assert (await outbox.take())["person/fed/state"]["weight"] == 85.0


async def test_a_guest_is_no_longer_waiting_for_a_person(pipeline: Pipeline) -> None:
    outbox = Outbox(pipeline)
    first = await pipeline.ingest(weigh_in(120, 23.5, "424242"))
    second = await pipeline.ingest(weigh_in(60, 54.35, "424242"))
    assert (await outbox.take())["household/unassigned/state"]["count"] == 2
    await pipeline.assign(second.id, None, guest=True)  # "not a household member"
    waiting = (await outbox.take())["household/unassigned/state"]
    assert waiting["count"] == 1 and waiting["latest"]["measurement_id"] == first.id
