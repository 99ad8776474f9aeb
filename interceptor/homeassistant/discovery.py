"""Home Assistant MQTT discovery configs, sans-I/O: the household, each person, each scale and gateway.

Device-based discovery (one retained `<prefix>/device/<node>/config` per device, its entities under
`components`, each with a `platform`; `device` and `origin` required at the root) as Home Assistant
documents it (home-assistant.io `source/_integrations/mqtt.markdown`, "Device discovery payload").
Entities take their names from the device ("Anna" + "Weight"), set `default_entity_id` (the option
that replaces `object_id`, which Home Assistant stops honouring in 2026.4) and a `unique_id`, and are
available while our retained `<base>/status` says `online` (our last will says `offline`).

States arrive as one JSON document per device (see `states`): each entity picks its field with a
`value_template`, and its method and confidence with a `json_attributes_template`. A field the
weigh-in does not have is JSON null, which the template renders as `None`, which Home Assistant
shows as unknown (templating docs, "Using value templates with MQTT"; `PAYLOAD_NONE` in the MQTT
integration) rather than as 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from interceptor import __version__
from interceptor.ble.gateways import MODEL as GATEWAY_MODEL
from interceptor.ble.gateways import SOURCE as GATEWAY_SOURCE
from interceptor.config import Config, Person, normalise_mac
from interceptor.homeassistant.entities import (
    ASSIGN_KEY,
    ASSIGN_NAME,
    GATEWAY,
    PERSON,
    ROOM,
    SCALE,
    UNASSIGNED,
    Entity,
)
from interceptor.homeassistant.topics import Topics, device_key, object_slug
from interceptor.model import LIVE_SOURCES, DeviceState
from interceptor.store.journal import Filter, Reader

ORIGIN = {"name": "Scale Interceptor", "sw_version": __version__}
HOUSEHOLD_ID = "scale_interceptor"
MANUFACTURERS = {"withings": "Withings", "ble": "Xiaomi"}
QOS = 1
GUEST_OPTION = "A guest (not in the household)"

Message = tuple[str, str]  # topic, payload


@dataclass(frozen=True)
class Scale:
    """What a scale's config depends on: who it is, what it is called, what it has told us."""

    device_id: str
    name: str
    model: str | None
    source: str
    firmware: str | None
    has_battery: bool
    has_room: bool  # it has sent room readings (a WS-50's temperature and CO2)


@dataclass(frozen=True)
class Gateway:
    """What a BLE gateway's config depends on (interceptor/ble/gateways.py)."""

    device_id: str
    name: str  # its own, or its client address
    model: str | None
    firmware: str | None


def option_labels(people: Sequence[Person]) -> dict[str, str | None]:
    """The select's options (what a person reads) → person slug, None for a guest (the household
    page's "not a household member"); a name two people share gets the slug."""
    names = [person.name for person in people]
    labels: dict[str, str | None] = {
        (person.name if names.count(person.name) == 1 else f"{person.name} ({person.slug})"): person.slug
        for person in people}
    labels[GUEST_OPTION] = None
    return labels


def _sensor(entity: Entity, node: str, object_prefix: str, state_topic: str, availability: list[dict]) -> dict:
    config: dict[str, Any] = {
        "platform": "sensor",
        "name": entity.name,
        "unique_id": f"{node}_{entity.key}",
        "default_entity_id": f"sensor.{object_prefix}_{entity.key}",
        "state_topic": state_topic,
        "value_template": f"{{{{ value_json.{entity.key} }}}}",
        "json_attributes_topic": state_topic,
        "json_attributes_template": f"{{{{ value_json.details.{entity.key} | tojson }}}}",
        "availability": availability,
        "qos": QOS,
    }
    if entity.device_class is not None:
        config["device_class"] = entity.device_class
    if entity.unit is not None:
        config["unit_of_measurement"] = entity.unit
    if entity.state_class is not None:
        config["state_class"] = entity.state_class
    if entity.precision is not None:
        config["suggested_display_precision"] = entity.precision
    if entity.diagnostic:
        config["entity_category"] = "diagnostic"
    if entity.force_update:
        config["force_update"] = True
    return config


def _device_config(device: dict, components: dict[str, dict]) -> str:
    return json.dumps({"device": device, "origin": ORIGIN, "components": components}, ensure_ascii=False,
                      separators=(",", ":"))


class Discovery:
    """The configs for one household and broker."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.topics = Topics(config.mqtt.base_topic, config.mqtt.discovery_prefix)
        self.labels = option_labels(config.users)
        self._available = [{"topic": self.topics.availability}]

    def household(self) -> Message:
        node = HOUSEHOLD_ID
        state = self.topics.unassigned
        count = _sensor(UNASSIGNED, node, HOUSEHOLD_ID, state, self._available)
        count["value_template"] = "{{ value_json.count }}"
        count["json_attributes_template"] = "{{ value_json.latest | tojson }}"
        count["icon"] = "mdi:account-question"
        assign = {
            "platform": "select",
            "name": ASSIGN_NAME,
            "unique_id": f"{node}_{ASSIGN_KEY}",
            "default_entity_id": f"select.{HOUSEHOLD_ID}_{ASSIGN_KEY}",
            "options": list(self.labels),
            "state_topic": state,
            "value_template": "{{ None }}",  # nobody is chosen until a person is
            "json_attributes_topic": state,
            "json_attributes_template": "{{ value_json.latest | tojson }}",
            "command_topic": self.topics.assign,
            # The weigh-in shown when the person was chosen, not whichever is latest on arrival
            # (`this` is the entity's own state; templating docs, "Using command templates with MQTT").
            "command_template": '{"measurement_id": {{ this.attributes.measurement_id | tojson }},'
                                ' "person": {{ value | tojson }}}',
            # Only offered while there is a weigh-in to claim.
            "availability": [*self._available, {
                "topic": state, "value_template": "{{ 'online' if value_json.count > 0 else 'offline' }}"}],
            "availability_mode": "all",
            "icon": "mdi:account-arrow-left",
            "qos": QOS,
        }
        device = {"identifiers": [HOUSEHOLD_ID], "name": "Scale Interceptor", "manufacturer": "Scale Interceptor",
                  "model": "Household", "sw_version": __version__}
        return self.topics.discovery(node), _device_config(device, {UNASSIGNED.key: count, ASSIGN_KEY: assign})

    def person(self, person: Person) -> Message:
        node = f"{HOUSEHOLD_ID}_person_{person.slug}"
        state = self.topics.person(person.slug)
        prefix = object_slug(person.slug)
        components = {entity.key: _sensor(entity, node, prefix, state, self._available) for entity in PERSON}
        device = {"identifiers": [node], "name": person.name, "manufacturer": "Scale Interceptor",
                  "model": "Person", "via_device": HOUSEHOLD_ID}
        return self.topics.discovery(node), _device_config(device, components)

    def scale(self, scale: Scale) -> Message:
        node = f"{HOUSEHOLD_ID}_device_{device_key(scale.device_id)}"
        state = self.topics.device(scale.device_id)
        prefix = object_slug(scale.name)
        entities = [entity for entity in SCALE if (entity.key != "battery" or scale.has_battery)
                    and (entity.key != "firmware" or scale.firmware is not None)]
        if scale.has_room:
            entities.extend(ROOM)
        components = {entity.key: _sensor(entity, node, prefix, state, self._available) for entity in entities}
        device: dict[str, Any] = {"identifiers": [node], "name": scale.name,
                                  "manufacturer": MANUFACTURERS.get(scale.source, scale.source),
                                  "via_device": HOUSEHOLD_ID}
        if scale.model:
            device["model"] = scale.model
        if scale.firmware:
            device["sw_version"] = scale.firmware
        mac = normalise_mac(scale.device_id)
        if mac is not None:
            device["connections"] = [["mac", mac]]
        return self.topics.discovery(node), _device_config(device, components)

    def gateway(self, gateway: Gateway) -> Message:
        node = f"{HOUSEHOLD_ID}_device_{device_key(gateway.device_id)}"
        state = self.topics.device(gateway.device_id)
        name = f"Gateway {gateway.name}"
        components = {entity.key: _sensor(entity, node, object_slug(name), state, self._available)
                      for entity in GATEWAY}
        device: dict[str, Any] = {"identifiers": [node], "name": name, "via_device": HOUSEHOLD_ID}
        if gateway.model:
            device["model"] = gateway.model
        if gateway.model == GATEWAY_MODEL:  # an OpenMQTTGateway/Theengs gateway is not ours to claim
            device["manufacturer"] = "Scale Interceptor"
        if gateway.firmware:
            device["sw_version"] = gateway.firmware
        return self.topics.discovery(node), _device_config(device, components)

    def all(self, scales: Iterable[Scale], gateways: Iterable[Gateway] = ()) -> list[Message]:
        """Household first: people, scales and gateways name it as the device they are reached through."""
        return [self.household(), *(self.person(person) for person in self.config.users),
                *(self.scale(scale) for scale in scales), *(self.gateway(gateway) for gateway in gateways)]

    def scale_name(self, device: DeviceState) -> str:
        """The name from `[devices."MAC"]`, else the model a config or the device gave, else the id."""
        mac = normalise_mac(device.device_id)
        settings = self.config.devices.get(mac) if mac else None
        ble = self.config.ble.device(mac.upper()) if mac else None
        for name in (settings and settings.name, settings and settings.model, ble and ble.model, device.model):
            if name:
                return name
        return f"Scale {device_key(device.device_id)[-4:]}"


def scales(reader: Reader, discovery: Discovery) -> list[Scale]:
    """Every scale in the journal, as its config needs it (on a reader: one query per device)."""
    found = []
    for device in reader.devices():
        if device.source not in LIVE_SOURCES:
            continue  # an export file or a vendor cloud, not a scale
        has_room = next(iter(reader.measurements(Filter(device_id=device.device_id, kind="environment"), limit=1)),
                        None) is not None
        found.append(Scale(device.device_id, discovery.scale_name(device), device.model, device.source,
                           device.firmware, device.battery_pct is not None, has_room))
    return found


def gateways(reader: Reader) -> list[Gateway]:
    """Every BLE gateway in the journal."""
    return [Gateway(device.device_id, device.device_id.removeprefix(f"{GATEWAY_SOURCE}:"), device.model,
                    device.firmware) for device in reader.devices(GATEWAY_SOURCE)]
