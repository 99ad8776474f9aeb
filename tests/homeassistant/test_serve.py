"""A real `interceptor serve` publishing to a real mosquitto, watched by a stand-in for Home Assistant:
discovery and states after weigh-ins from the scale stand-in and from BLE frames, a journal older
than `[mqtt]` published on connecting, a claim made with the select landing in the journal, and the
broker going away and coming back."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
import urllib.request
from collections import Counter
from datetime import datetime
from pathlib import Path

from pytest import approx

from interceptor.config import load_config
from interceptor.doctor import check_journal, check_mqtt
from interceptor.homeassistant.states import SINK
from interceptor.store.journal import Backlog, reader_of
from interceptor.users import withings_user_id
from interceptor.withings import scale
from tests.ble.conftest import TOKEN, ble_toml
from tests.ble.streams import s400_weigh_in
from tests.conftest import run_cli, start_server, wait_until
from tests.homeassistant.conftest import BASE, PREFIX, Broker, Observer, mqtt_toml, render, retained
from tests.homeassistant.ha_schema import problems_with
from tests.withings.samples import first_line

FRED = 2507298  # the scale's id for Fred (HOUSEHOLD_TOML)
PERSON_FED, PERSON_FRA = f"{BASE}/person/fed/state", f"{BASE}/person/fra/state"
UNASSIGNED = f"{BASE}/household/unassigned/state"
SCALE_STATE = f"{BASE}/device/0024e40659dc/state"
STATES = (PERSON_FED, PERSON_FRA, SCALE_STATE, UNASSIGNED)
HOUSEHOLD_CONFIG = f"{PREFIX}/device/scale_interceptor/config"


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "interceptor.toml"
    path.write_text(text, encoding="utf-8")
    return path


def weigh(port: int, meastime: int, weight_kg: float, userid: int | None = None) -> None:
    """The scale stand-in's whole conversation; the scale must get `status 0` whatever the broker does."""
    conversation = asyncio.run(scale.weigh_in("127.0.0.1", port, userid=userid, meastime=meastime,
                                              weight_g=round(weight_kg * 1000)))
    assert conversation.response(2).json()["status"] == 0


async def _talk(port: int, *requests: tuple[str, bytes]) -> list[scale.RawResponse]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        responses = []
        for path, body in requests:
            writer.write(scale.request_bytes(path, body))
            await writer.drain()
            responses.append(await scale.read_response(reader))
        return responses
    finally:
        writer.close()


def listed(served: object, *options: str) -> list[dict]:
    result = served.cli("measurements", "list", "--format", "json", *options)  # type: ignore[attr-defined]
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def live_ids(observer: Observer, topic: str) -> list[int]:
    """The weigh-ins Home Assistant was told about as new states on `topic`, in order."""
    return [message.json()["measurement_id"] for message in observer.on(topic, retained=False)]


def published_since(observer: Observer, moment: float, *topics: str) -> dict[str, int]:
    """How many times each topic was published since `moment` (`time.monotonic()`)."""
    return {topic: sum(1 for message in observer.on(topic) if message.at > moment) for topic in topics}


def unstamped(payload: bytes) -> dict:
    """A state document without its `epoch` and `seq`."""
    document = json.loads(payload)
    return {key: value for key, value in document.items() if key not in ("epoch", "seq")}


def household_weigh_ins(port: int, franziska: int) -> None:
    """Two weigh-ins of Fred's, one of Franziska's, two weights near nobody's (unassigned)."""
    now = int(time.time())
    for seconds_ago, weight_kg, userid in ((500, 86.4, FRED), (400, 86.1, FRED), (300, 58.2, franziska),
                                           (200, 40.2, 424242), (100, 121.3, 424242)):
        weigh(port, now - seconds_ago, weight_kg, userid)


def test_weigh_ins_appear_in_home_assistant_and_a_claim_lands_in_the_journal(tmp_path: Path, broker: Broker) -> None:
    observer = Observer(broker.port)
    served = start_server(write_config(tmp_path, mqtt_toml(broker.url)), tmp_path / "data")
    try:
        now = int(time.time())
        weigh(served.port, now - 120, 86.1, FRED)
        weigh(served.port, now - 60, 54.35, 424242)  # a guest id, a weight near nobody's: unassigned
        wait_until(lambda: observer.latest(UNASSIGNED) and observer.latest(UNASSIGNED)["count"] == 1,
                   what="the unassigned weigh-in")
        wait_until(lambda: observer.latest(PERSON_FED), what="Fred's state")

        held = retained(broker.port, f"{PREFIX}/#")
        assert set(held) == {HOUSEHOLD_CONFIG, f"{PREFIX}/device/scale_interceptor_person_fed/config",
                             f"{PREFIX}/device/scale_interceptor_person_fra/config",
                             f"{PREFIX}/device/scale_interceptor_device_0024e40659dc/config"}
        for topic, payload in held.items():
            assert problems_with(topic, json.loads(payload)) == [], topic
        fred = json.loads(held[f"{PREFIX}/device/scale_interceptor_person_fed/config"])["components"]
        assert float(render(fred["weight"]["value_template"], observer.on(PERSON_FED)[-1].payload)) == approx(86.1)
        device = observer.latest(f"{BASE}/device/0024e40659dc/state")
        assert (device["battery"], device["firmware"]) == (69.0, "200")  # the stand-in's session values
        assert retained(broker.port, f"{BASE}/status") == {f"{BASE}/status": b"online"}

        # Home Assistant's select: Franziska chosen for the weigh-in it shows.
        select = json.loads(held[HOUSEHOLD_CONFIG])["components"]["assign_latest_weigh_in"]
        latest = observer.latest(UNASSIGNED)["latest"]
        command = render(select["command_template"], "Franziska", this={"attributes": latest})
        observer.client.publish(select["command_topic"], command, qos=1).wait_for_publish(5)
        wait_until(lambda: observer.latest(PERSON_FRA) is not None, what="Franziska's state")
        assert observer.latest(PERSON_FRA)["measurement_id"] == latest["measurement_id"]
        wait_until(lambda: observer.latest(UNASSIGNED)["count"] == 0, what="nothing left to claim")
        claimed = next(item for item in listed(served) if item["id"] == latest["measurement_id"])
        assert (claimed["user"], claimed["assigned_by"]) == ("fra", "manual")
        assert claimed["metrics"]["bmi"]["value"] == observer.latest(PERSON_FRA)["bmi"]

        # The same claim again (a second tap, another phone): refused, the weigh-in stays Franziska's.
        observer.client.publish(select["command_topic"], command, qos=1).wait_for_publish(5)
        wait_until(lambda: "is already assigned to fra" in served.log_path.read_text(), what="the second claim")

        # Home Assistant restarted: it announces `online` and gets every config again.
        person_config = f"{PREFIX}/device/scale_interceptor_person_fra/config"
        configs = (HOUSEHOLD_CONFIG, person_config)
        before = [len(observer.on(topic)) for topic in configs]
        observer.client.publish(f"{PREFIX}/status", "online", qos=1).wait_for_publish(5)
        wait_until(lambda: all(len(observer.on(topic)) > count for topic, count in zip(configs, before, strict=True)),
                   what="the household's and each person's configs sent again")

        # A claim Home Assistant cannot make is logged in one line and changes nothing.
        observer.client.publish(select["command_topic"], "Zed", qos=1).wait_for_publish(5)
        wait_until(lambda: "'Zed' is not a person of the household" in served.log_path.read_text(), what="refusal")

        # The WS-50's room readings (reference sample, moved to now) after its session: the scale's
        # device gains a temperature and a CO2 sensor.
        body = first_line("2013-ws50-v2-measure-request-body.txt").replace(b"1387053012", str(now - 30).encode())
        session = scale.session_new_body(scale.ScaleIdentity())
        _, stored = asyncio.run(_talk(served.port, ("/cgi-bin/session", session), ("/cgi-bin/v2/measure", body)))
        assert stored.json() == {"status": 0}
        room = listed(served, "--kind", "environment")[0]["readings"]
        state = f"{BASE}/device/0024e40659dc/state"
        config_topic = f"{PREFIX}/device/scale_interceptor_device_0024e40659dc/config"
        wait_until(lambda: observer.latest(state)["carbon_dioxide"] is not None, what="the room readings")
        assert (observer.latest(state)["carbon_dioxide"], observer.latest(state)["temperature"]) == (
            room["co2_ppm"], room["temperature_c"])
        wait_until(lambda: "temperature" in observer.latest(config_topic)["components"], what="the room entities")
        components = observer.latest(config_topic)["components"]
        assert render(components["carbon_dioxide"]["value_template"], observer.on(state)[-1].payload) == "655.0"
        assert problems_with(config_topic, observer.latest(config_topic)) == []
    finally:
        log = served.kill()
        observer.close()
    assert "Traceback" not in log
    assert retained(broker.port, f"{BASE}/status") == {f"{BASE}/status": b"offline"}  # said on the way out


def test_a_journal_older_than_mqtt_is_published_on_connecting_and_only_once(tmp_path: Path, broker: Broker) -> None:
    """The issue: `serve` started with `[mqtt]` on a journal that already holds weigh-ins left the
    broker with configs only (Unknown everywhere, the select unavailable) until the next weigh-in."""
    data = tmp_path / "data"
    with_mqtt = mqtt_toml(broker.url)
    before = write_config(tmp_path, with_mqtt[:with_mqtt.index("\n[mqtt]")])
    served = start_server(before, data)
    try:
        household_weigh_ins(served.port, withings_user_id(load_config(before, environ={}).users[1]))
        stored = listed(served)
    finally:
        served.kill()
    with reader_of(data / "journal.sqlite") as reader:
        assert reader.outbox_size(SINK) == 0  # nothing was queued for Home Assistant: it was not configured

    observer = Observer(broker.port)
    assert observer.subscribed.wait(10)
    config = write_config(tmp_path, with_mqtt)
    served = start_server(config, data)
    try:
        wait_until(lambda: all(observer.on(topic) for topic in STATES), what="every state")
        held = retained(broker.port, f"{BASE}/#")
        latest = {user: max((item for item in stored if item["user"] == user), key=lambda item: item["taken_at"])
                  for user in ("fed", "fra")}
        assert json.loads(held[PERSON_FED])["measurement_id"] == latest["fed"]["id"]
        assert json.loads(held[PERSON_FED])["weight"] == approx(86.1)
        assert json.loads(held[PERSON_FRA])["measurement_id"] == latest["fra"]["id"]
        device = json.loads(held[SCALE_STATE])
        assert (device["battery"], device["firmware"]) == (69.0, "200")
        unassigned = json.loads(held[UNASSIGNED])
        waiting = [item for item in stored if item["user"] is None]
        assert unassigned["count"] == 2 == len(waiting)
        assert unassigned["latest"]["measurement_id"] == max(waiting, key=lambda item: item["taken_at"])["id"]

        # The select offers the household and is available: there are weigh-ins to claim.
        select = json.loads(retained(broker.port, HOUSEHOLD_CONFIG)[HOUSEHOLD_CONFIG])[
            "components"]["assign_latest_weigh_in"]
        assert select["options"] == ["Fred", "Franziska", "A guest (not in the household)"]
        assert render(select["availability"][1]["value_template"], held[UNASSIGNED]) == "online"
        assert json.loads(render(select["json_attributes_template"], held[UNASSIGNED])) == unassigned["latest"]

        # Each once (weight has `force_update`: twice would be two weigh-ins to Home Assistant), and
        # after Home Assistant announces itself, the configs again but the states the broker holds not.
        wait_until(lambda: "publishing to Home Assistant" in served.log_path.read_text(), what="connected")
        configs = len(observer.on(HOUSEHOLD_CONFIG))
        observer.client.publish(f"{PREFIX}/status", "online", qos=1).wait_for_publish(5)
        wait_until(lambda: len(observer.on(HOUSEHOLD_CONFIG)) > configs, what="the configs sent again")
        time.sleep(1.0)  # room for anything that would be published again
        assert published_since(observer, 0.0, *STATES) == dict.fromkeys(STATES, 1)
    finally:
        log = served.kill()
    assert "Traceback" not in log

    # Started again on the same journal: the broker holds every state already, nothing is repeated.
    served = start_server(config, data)
    try:
        wait_until(lambda: "publishing to Home Assistant" in served.log_path.read_text(), what="connected again")
        time.sleep(1.0)
        assert published_since(observer, 0.0, *STATES) == dict.fromkeys(STATES, 1)
    finally:
        served.kill()
        observer.close()


def test_ble_frames_reach_the_person_of_the_s400_profile(tmp_path: Path, broker: Broker) -> None:
    config = write_config(tmp_path, ble_toml(extra=f'\n[mqtt]\nurl = "{broker.url}"\n'))
    observer = Observer(broker.port)
    served = start_server(config, tmp_path / "data")
    try:
        body = json.dumps({"frames": [frame.to_json() for frame in s400_weigh_in()]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{served.port}/api/v1/ble/frames", data=body,
                                         headers={"Authorization": f"Bearer {TOKEN}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert len(json.loads(response.read())["measurements"]) == 1
        wait_until(lambda: observer.latest(PERSON_FED), what="Fred's state from the S400")
        state = observer.latest(PERSON_FED)
        assert (state["weight"], state["heart_rate"], state["impedance_low"], state["impedance_high"]) == (
            69.9, 92.0, 543.2, 497.6)
        assert state["impedance"] is None and state["body_fat"] is not None
        assert state["details"]["body_fat"]["method"] == listed(served)[0]["metrics"]["body_fat_pct"]["method"]
        wait_until(lambda: f"{PREFIX}/device/scale_interceptor_device_8cd0b2f6beef/config" in retained(
            broker.port, f"{PREFIX}/#", settle_s=0.2), what="the S400's device")
        s400 = json.loads(retained(broker.port, f"{PREFIX}/#")[
            f"{PREFIX}/device/scale_interceptor_device_8cd0b2f6beef/config"])
        assert s400["device"]["name"] == "S400 bathroom" and s400["device"]["manufacturer"] == "Xiaomi"
    finally:
        served.kill()
        observer.close()


def test_a_gateway_is_a_home_assistant_device_with_its_last_seen_and_version(tmp_path: Path, broker: Broker) -> None:
    """A batch naming its gateway: the gateway's device config (version as `sw_version`) and its
    state (last seen, with address and frames as attributes), as Home Assistant reads them."""
    config = write_config(tmp_path, ble_toml(extra=f'\n[mqtt]\nurl = "{broker.url}"\n'))
    observer = Observer(broker.port)
    served = start_server(config, tmp_path / "data")
    try:
        frames = [frame.to_json() for frame in s400_weigh_in()]
        body = json.dumps({"gateway": {"name": "bathroom-pi", "version": "9.8.7"}, "frames": frames}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{served.port}/api/v1/ble/frames", data=body,
                                         headers={"Authorization": f"Bearer {TOKEN}",
                                                  "Content-Type": "application/json"})
        sent = time.time()
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        wait_until(lambda: any("gatewaybathroompi" in topic for topic in retained(broker.port, f"{PREFIX}/#", 0.2)),
                   what="the gateway's device")
        topic, payload = next((topic, payload) for topic, payload in retained(broker.port, f"{PREFIX}/#").items()
                              if "gatewaybathroompi" in topic)
        device_config = json.loads(payload)
        assert problems_with(topic, device_config) == []
        assert device_config["device"]["name"] == "Gateway bathroom-pi"
        assert device_config["device"]["sw_version"] == "9.8.7"
        last_seen = device_config["components"]["last_seen"]
        wait_until(lambda: observer.latest(last_seen["state_topic"]), what="the gateway's state")
        state = json.dumps(observer.latest(last_seen["state_topic"]))
        seen = datetime.fromisoformat(render(last_seen["value_template"], state))
        assert abs(seen.timestamp() - sent) < 5
        assert json.loads(render(last_seen["json_attributes_template"], state)) == {"address": "127.0.0.1",
                                                                                  "frames": len(frames)}
    finally:
        served.kill()
        observer.close()


def test_configs_and_states_come_back_after_the_broker_lost_everything(tmp_path: Path, broker: Broker) -> None:
    config = write_config(tmp_path, mqtt_toml(broker.url))
    observer = Observer(broker.port)
    assert observer.subscribed.wait(10)
    served = start_server(config, tmp_path / "data")
    try:
        household_weigh_ins(served.port, withings_user_id(load_config(config, environ={}).users[1]))
        wait_until(lambda: set(STATES) <= set(retained(broker.port, f"{BASE}/#", settle_s=0.2)), what="states")
        wait_until(lambda: HOUSEHOLD_CONFIG in retained(broker.port, f"{PREFIX}/#", settle_s=0.2), what="configs")
        before = retained(broker.port, f"{BASE}/#")
        broker.stop(signal.SIGKILL)  # no persistence: its retained messages are gone
        wait_until(lambda: not observer.subscribed.is_set(), what="the observer disconnected")
        restarted = time.monotonic()
        broker.start()
        assert observer.subscribed.wait(10)
        wait_until(lambda: HOUSEHOLD_CONFIG in retained(broker.port, f"{PREFIX}/#", settle_s=0.2), timeout=20,
                   what="the configs published again")
        wait_until(lambda: set(STATES) <= set(retained(broker.port, f"{BASE}/#", settle_s=0.2)),
                   what="the states published again")
        after = retained(broker.port, f"{BASE}/#")
        assert after[f"{BASE}/status"] == b"online"
        assert {topic: unstamped(after[topic]) for topic in STATES} == {
            topic: unstamped(before[topic]) for topic in STATES}  # the same states (stamped as of now)
        time.sleep(1.0)  # room for anything that would be published twice
        assert published_since(observer, restarted, *STATES) == dict.fromkeys(STATES, 1)
        configs = [message.at for message in observer.on(HOUSEHOLD_CONFIG) if message.at > restarted]
        assert len(configs) == 1 and all(message.at > configs[0] for topic in STATES
                                         for message in observer.on(topic) if message.at > restarted)
        log = served.log_path.read_text()
        assert log.count("lost the connection to the MQTT broker") == 1 and "Traceback" not in log
    finally:
        served.kill()
        observer.close()


def test_a_lost_delivered_mark_publishes_nothing_twice(tmp_path: Path, broker: Broker) -> None:
    """Weigh-ins made while the broker is down wait, are published in order when it is back; and
    when the marks that say so are lost (a power cut right after publishing), starting again reads
    our retained states back and publishes nothing twice."""
    data = tmp_path / "data"
    config = write_config(tmp_path, mqtt_toml(broker.url))
    broker.stop()
    served = start_server(config, data)
    now = int(time.time())
    for minute, weight in enumerate((86.4, 86.2, 86.1)):
        weigh(served.port, now - 600 + 60 * minute, weight, FRED)
    served.kill()
    saved = tmp_path / "before-delivery"
    saved.mkdir()
    for file in data.glob("journal.sqlite*"):
        shutil.copy2(file, saved / file.name)  # the outbox as it was: nothing marked delivered

    broker.start()
    observer = Observer(broker.port)
    assert observer.subscribed.wait(10)
    served = start_server(config, data)
    try:
        ids = [item["id"] for item in listed(served)]
        wait_until(lambda: live_ids(observer, PERSON_FED) == ids, what="the three weigh-ins, in order")
    finally:
        served.kill()
    for file in saved.iterdir():
        shutil.copy2(file, data / file.name)
    served = start_server(config, data)
    try:
        wait_until(lambda: served.log_path.read_text().count("publishing to Home Assistant") == 1, what="connected")
        time.sleep(1.0)  # room for anything that would be published again
        assert live_ids(observer, PERSON_FED) == ids
        with reader_of(data / "journal.sqlite") as reader:
            assert reader.outbox_size(SINK) == 0  # settled: what the broker had counts as delivered
    finally:
        served.kill()
        observer.close()


def test_no_loss_and_no_duplicate_while_the_broker_is_killed_under_weigh_ins(tmp_path: Path, broker: Broker) -> None:
    observer = Observer(broker.port)
    assert observer.subscribed.wait(10)
    config = write_config(tmp_path, mqtt_toml(broker.url))
    franziska = withings_user_id(load_config(config, environ={}).users[1])  # derived from her slug
    served = start_server(config, tmp_path / "data")
    try:
        now = int(time.time())
        kills = {6, 15}
        for index in range(24):
            if index in kills:
                broker.stop(signal.SIGKILL)
            started = time.monotonic()
            weigh(served.port, now - 1000 + index, 86.0 + index / 10, FRED if index % 2 else franziska)
            assert time.monotonic() - started < 2.0, "a weigh-in waited for the broker"
            if index - 1 in kills:  # down across one weigh-in of each person: both are owed by the outbox
                time.sleep(0.3)
                broker.start()
            time.sleep(0.2)  # the stream outlasts the link's reconnection: it publishes between kills
        stored = listed(served)
        expected = {topic: [item["id"] for item in stored if item["user"] == user]
                    for topic, user in ((PERSON_FED, "fed"), (PERSON_FRA, "fra"))}
        assert all(len(ids) == 12 for ids in expected.values()), stored
        wait_until(lambda: all(live_ids(observer, topic)[-1:] == ids[-1:] for topic, ids in expected.items()),
                   timeout=30, what="the last weigh-in of each person")
        for topic, ids in expected.items():
            seen = live_ids(observer, topic)
            assert [count for count in Counter(seen).values() if count > 1] == [], f"{topic}: {seen}"
            assert seen == ids, f"{topic}: published {seen}, stored {ids}"
    finally:
        log = served.kill()
        observer.close()
    assert "Traceback" not in log


def test_a_broker_refusing_the_credentials_is_one_clear_line(tmp_path: Path) -> None:
    root = tmp_path / "broker"
    root.mkdir()
    passwords = root / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "ha", "right-one"], check=True,
                   capture_output=True)
    broker = Broker(root, password_file=passwords)
    secret = "wrong-horse-battery"
    config = write_config(tmp_path, mqtt_toml(f"mqtt://ha:{secret}@127.0.0.1:{broker.port}"))
    served = start_server(config, tmp_path / "data")
    try:
        weigh(served.port, int(time.time()) - 60, 86.1, FRED)  # the scale is answered all the same
        def backlog() -> Backlog:
            with reader_of(tmp_path / "data" / "journal.sqlite") as reader:
                return reader.backlog(SINK)

        # The reason is noted on the outbox for the health page, after several reconnection attempts.
        wait_until(lambda: backlog().last_error is not None, what="the reason on the outbox")
        assert "refused our credentials" in str(backlog().last_error) and secret not in str(backlog().last_error)
        checked = run_cli("config", "check", "--config", str(config))
        settings = load_config(config, environ={}, overrides={"data_dir": str(tmp_path / "data")})
        doctor = [check_journal(settings).line(), asyncio.run(check_mqtt(settings)).line()]
    finally:
        log = served.kill()
        broker.stop()
    refusals = [line for line in log.splitlines() if "refused our credentials" in line]
    assert len(refusals) == 1, log
    assert "check the user and password in [mqtt] url" in refusals[0]
    assert "Traceback" not in log and secret not in log
    assert checked.returncode == 0 and secret not in checked.stdout + checked.stderr
    assert '"password": "**********"' in checked.stdout
    assert "item(s) waiting for Home Assistant" in doctor[0]  # what `interceptor doctor` prints
    assert doctor[1].startswith("FAIL  home assistant: the MQTT broker at") and "refused our credentials" in doctor[1]
    assert secret not in "".join(doctor)
