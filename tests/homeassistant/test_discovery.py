"""Discovery configs for a household of two, checked against what Home Assistant's documentation
accepts, and every template rendered against our state documents as Home Assistant renders it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from interceptor.config import load_config
from interceptor.homeassistant.discovery import GUEST_OPTION, Discovery, Gateway, Scale, option_labels
from interceptor.homeassistant.entities import PERSON
from interceptor.homeassistant.states import person_document, unassigned_document
from interceptor.model import Measurement, Metric
from tests.homeassistant.conftest import mqtt_toml, render
from tests.homeassistant.ha_schema import problems_with

WS50 = Scale("00:24:e4:06:59:dc", "Bathroom scale", "WS-50", "withings", "200", has_battery=True, has_room=True)
S400 = Scale("8C:D0:B2:F6:BE:EF", "S400 bathroom", "S400", "ble", None, has_battery=False, has_room=False)


@pytest.fixture
def discovery(tmp_path: Path) -> Discovery:
    path = tmp_path / "interceptor.toml"
    path.write_text(mqtt_toml("mqtt://anna:not-in-any-config@127.0.0.1:1883"), encoding="utf-8")
    return Discovery(load_config(path, environ={}))


def components(message: tuple[str, str]) -> dict:
    return json.loads(message[1])["components"]


def test_every_config_is_one_home_assistant_accepts(discovery: Discovery) -> None:
    messages = discovery.all([WS50, S400])
    assert [topic for topic, _ in messages] == [
        "homeassistant/device/scale_interceptor/config",
        "homeassistant/device/scale_interceptor_person_fed/config",
        "homeassistant/device/scale_interceptor_person_fra/config",
        "homeassistant/device/scale_interceptor_device_0024e40659dc/config",
        "homeassistant/device/scale_interceptor_device_8cd0b2f6beef/config",
    ]
    for topic, payload in messages:
        assert problems_with(topic, json.loads(payload)) == [], topic
        assert "not-in-any-config" not in payload


def test_a_gateway_is_a_device_with_its_last_seen_and_its_version(discovery: Discovery) -> None:
    ours = Gateway("gateway:bathroom-pi", "bathroom-pi", "Interceptor gateway", "0.1.0")
    theirs = Gateway("gateway:OMG_ESP32", "OMG_ESP32", "OpenMQTTGateway/Theengs gateway", None)
    for gateway in (ours, theirs):
        topic, payload = discovery.gateway(gateway)
        assert problems_with(topic, json.loads(payload)) == [], topic
    topic, payload = discovery.gateway(ours)
    config = json.loads(payload)
    assert topic.startswith("homeassistant/device/scale_interceptor_device_gatewaybathroompi_")
    assert config["device"] == {"identifiers": [topic.split("/")[2]], "name": "Gateway bathroom-pi",
                                "via_device": "scale_interceptor", "model": "Interceptor gateway",
                                "manufacturer": "Scale Interceptor", "sw_version": "0.1.0"}
    (last_seen,) = config["components"].values()
    assert (last_seen["device_class"], last_seen["default_entity_id"]) == (
        "timestamp", "sensor.gateway_bathroom_pi_last_seen")
    assert last_seen["availability"] == [{"topic": "interceptor/status"}]
    assert "manufacturer" not in json.loads(discovery.gateway(theirs)[1])["device"]
    assert [topic for topic, _ in discovery.all([WS50], [ours])][-1] == topic


def test_names_a_person_reads_and_bodymiscale_keys(discovery: Discovery) -> None:
    fred = json.loads(discovery.person(discovery.config.users[0])[1])
    assert fred["device"]["name"] == "Fred" and fred["origin"]["name"] == "Scale Interceptor"
    weight = fred["components"]["weight"]
    # Home Assistant names an entity "<device name> <entity name>": "Fred Weight".
    assert (weight["name"], weight["default_entity_id"], weight["unique_id"]) == (
        "Weight", "sensor.fed_weight", "scale_interceptor_person_fed_weight")
    assert (weight["device_class"], weight["unit_of_measurement"], weight["state_class"], weight["force_update"]) == (
        "weight", "kg", "measurement", True)
    assert set(fred["components"]) >= {
        "weight", "bmi", "body_fat", "water", "bone_mass", "muscle_mass", "lean_body_mass", "visceral_fat",
        "basal_metabolism", "metabolic_age", "protein", "body_score", "heart_rate", "impedance", "impedance_low",
        "impedance_high", "last_measurement_time"}
    for key in ("impedance", "impedance_low", "impedance_high"):
        assert fred["components"][key]["unit_of_measurement"] == "Ω" and "device_class" not in fred["components"][key]
    assert fred["components"]["last_measurement_time"]["device_class"] == "timestamp"
    assert all(component["availability"] == [{"topic": "interceptor/status"}]
               for component in fred["components"].values())


def test_scales_show_what_they_have(discovery: Discovery) -> None:
    ws50 = json.loads(discovery.scale(WS50)[1])
    assert ws50["device"]["name"] == "Bathroom scale" and ws50["device"]["sw_version"] == "200"
    assert ws50["device"]["connections"] == [["mac", "00:24:e4:06:59:dc"]]
    found = ws50["components"]
    assert {key: found[key].get("device_class") for key in found} == {
        "battery": "battery", "firmware": None, "last_seen": "timestamp", "last_weigh_in": "timestamp",
        "temperature": "temperature", "carbon_dioxide": "carbon_dioxide"}
    assert found["carbon_dioxide"]["unit_of_measurement"] == "ppm"
    assert found["battery"]["default_entity_id"] == "sensor.bathroom_scale_battery"  # "Bathroom scale Battery"
    s400 = components(discovery.scale(S400))  # no battery or firmware reported, no room readings
    assert set(s400) == {"last_seen", "last_weigh_in"}


def test_household_select_offers_the_people(discovery: Discovery) -> None:
    household = components(discovery.household())
    select = household["assign_latest_weigh_in"]
    assert select["platform"] == "select" and select["options"] == ["Fred", "Franziska", GUEST_OPTION]
    assert select["command_topic"] == "interceptor/household/unassigned/assign"
    # The command names the weigh-in the select showed, so a later weigh-in cannot take the claim.
    sent = render(select["command_template"], "Franziska", this={"attributes": {"measurement_id": 17}})
    assert json.loads(sent) == {"measurement_id": 17, "person": "Franziska"}
    state = json.dumps(unassigned_document(0, None))
    available = select["availability"][1]
    assert render(available["value_template"], state) == "offline"  # nothing to claim: not offered
    assert render(household["unassigned_weigh_ins"]["value_template"], state) == "0"


def test_options_tell_apart_people_with_one_name(tmp_path: Path) -> None:
    path = tmp_path / "interceptor.toml"
    path.write_text(mqtt_toml("mqtt://127.0.0.1:1883").replace('name = "Franziska"', 'name = "Fred"'))
    assert option_labels(load_config(path, environ={}).users) == {"Fred (fed)": "fed", "Fred (fra)": "fra",
                                                                 GUEST_OPTION: None}


def test_each_entity_reads_its_own_field_and_a_missing_one_is_unknown(discovery: Discovery) -> None:
    """Templates rendered as Home Assistant renders them: `None` is what makes a sensor unknown."""
    taken = datetime(2025, 4, 10, 2, 3, 25, tzinfo=UTC)
    weigh_in = Measurement(
        id=7, identity="x", kind="body", source="withings", device_id="00:24:e4:06:59:dc", device_model="WS-50",
        user="fed", taken_at=taken, received_at=taken, readings={"weight_kg": 86.1, "heart_rate_bpm": 61.0},
        metrics={"bmi": Metric(value=21.5, unit="kg/m²", method="anthropometric", confidence="anthropometric"),
                 "body_fat_pct": Metric(value=17.2, unit="%", method="sun2003", confidence="literature")},
        refusals={"muscle_mass_kg": "needs an impedance"}, assignment="device")
    state = json.dumps(person_document(weigh_in))
    fred = components(discovery.person(discovery.config.users[0]))
    shown = {key: render(component["value_template"], state) for key, component in fred.items()}
    assert shown["weight"] == "86.1" and shown["heart_rate"] == "61.0" and shown["body_fat"] == "17.2"
    assert shown["last_measurement_time"] == "2025-04-10T02:03:25+00:00"
    assert shown["impedance"] == "None" and shown["water"] == "None"  # not 0: Home Assistant shows unknown
    attributes = {key: json.loads(render(component["json_attributes_template"], state))
                  for key, component in fred.items()}
    assert attributes["body_fat"] == {"method": "sun2003", "confidence": "literature"}
    assert attributes["muscle_mass"] == {"reason": "needs an impedance"}
    assert attributes["weight"]["measurement_id"] == 7 and attributes["weight"]["assigned_by"] == "device"
    empty = json.dumps(person_document(None))  # a person whose only weigh-in moved to someone else
    assert {render(component["value_template"], empty) for component in fred.values()} == {"None"}
    assert len(PERSON) == len(fred)


@pytest.mark.parametrize(("change", "problem"), [
    (lambda c: c.pop("origin"), "origin is required"),
    (lambda c: c["device"].pop("identifiers"), "at least one of identifiers or connections"),
    (lambda c: c["components"]["weight"].pop("platform"), "platform None"),
    (lambda c: c["components"]["weight"].pop("unique_id"), "unique_id is required"),
    (lambda c: c["components"]["weight"].update(object_id="fed_weight"), "unknown key 'object_id'"),
    (lambda c: c["components"]["impedance"].update(device_class="impedance"), "not a sensor device class"),
    (lambda c: c["components"]["weight"].update(unit_of_measurement="lbs"), "unit 'lbs' is not one"),
    (lambda c: c["components"]["last_measurement_time"].update(state_class="measurement"), "no state_class"),
    (lambda c: c["components"]["weight"].update(force_update="yes"), "force_update: 'yes' is not boolean"),
    (lambda c: c["components"]["weight"].update(entity_category="config"), "must be diagnostic"),
    (lambda c: c["components"]["weight"].update(default_entity_id="fed_weight"), "is not sensor.<lower-case"),
])
def test_the_check_refuses_what_home_assistant_refuses(discovery: Discovery, change, problem: str) -> None:
    topic, payload = discovery.person(discovery.config.users[0])
    config = json.loads(payload)
    change(config)
    assert any(problem in found for found in problems_with(topic, config)), problems_with(topic, config)
