"""What Home Assistant's MQTT discovery accepts, written from its documentation, to check our configs.

Sources (repository home-assistant/home-assistant.io, the commits read):
- `source/_integrations/mqtt.markdown` @0a314403: "Discovery topic" (`<prefix>/<component>/
  [<node_id>/]<object_id>/config`, ids of `[a-zA-Z0-9_-]`), "Device discovery payload" (root `device`
  and `origin` required; components under `components`, each with `platform`; entity components need
  `unique_id`; shared options: availability, origin, command_topic, state_topic, qos, encoding),
  origin keys (`name` required, `sw_version`, `support_url`), device keys, availability keys.
- `source/_integrations/sensor.mqtt.markdown` @9e4a69ab: every sensor key and its type; `state_topic`
  required; `entity_category` must be `diagnostic` for sensors; `options` only with device class
  `enum`, never with `state_class` or `unit_of_measurement`.
- `source/_integrations/select.mqtt.markdown` @23472596: every select key; `command_topic` and
  `options` (a list) required.
- `default_entity_id` (every current `*.mqtt.markdown`, e.g. infrared.mqtt): a string such as
  `infrared.foobar`, i.e. `<platform>.<object id>`. `object_id` is refused here: Home Assistant 2025.10
  deprecates it ("will stop working in Home Assistant Core 2026.4", reference/ecosystem.md §2.2).
- `source/_integrations/sensor.markdown` @7450caca: device classes and the units each accepts.
- State classes: developers.home-assistant.io/docs/core/entity/sensor (linked from sensor.mqtt).

Home Assistant ignores unknown keys; this check refuses them, so a misspelt key fails a test instead
of silently doing nothing.
"""

from __future__ import annotations

import re
from typing import Any

STRING, BOOLEAN, INTEGER, LIST, MAP, TEMPLATE = "string", "boolean", "integer", "list", "map", "template"

ID = re.compile(r"^[a-zA-Z0-9_-]+$")
DISCOVERY_TOPIC = re.compile(r"^(?P<prefix>.+)/(?P<component>[a-z_]+)/(?:[a-zA-Z0-9_-]+/)?[a-zA-Z0-9_-]+/config$")

AVAILABILITY_ITEM = {"payload_available": STRING, "payload_not_available": STRING, "topic": STRING,
                     "value_template": TEMPLATE}
DEVICE = {"configuration_url": STRING, "connections": LIST, "hw_version": STRING, "identifiers": (STRING, LIST),
          "manufacturer": STRING, "model": STRING, "model_id": STRING, "name": STRING, "serial_number": STRING,
          "suggested_area": STRING, "sw_version": STRING, "via_device": STRING}
ORIGIN = {"name": STRING, "sw_version": STRING, "support_url": STRING}
ROOT = {"device": MAP, "origin": MAP, "components": MAP, "availability": LIST, "availability_topic": STRING,
        "command_topic": STRING, "state_topic": STRING, "qos": INTEGER, "encoding": STRING}

COMMON = {
    "availability": LIST, "availability_mode": STRING, "availability_template": TEMPLATE,
    "availability_topic": STRING, "default_entity_id": STRING, "device": MAP, "enabled_by_default": BOOLEAN,
    "encoding": STRING, "entity_category": STRING, "entity_picture": STRING, "icon": STRING,
    "json_attributes_template": TEMPLATE, "json_attributes_topic": STRING, "name": (STRING, None),
    "payload_available": STRING, "payload_not_available": STRING, "platform": STRING, "qos": INTEGER,
    "unique_id": STRING, "value_template": TEMPLATE,
}
PLATFORMS: dict[str, dict[str, Any]] = {
    "sensor": {**COMMON, "device_class": (STRING, None), "expire_after": INTEGER, "force_update": BOOLEAN,
               "last_reset_value_template": TEMPLATE, "options": LIST, "suggested_display_precision": INTEGER,
               "state_class": STRING, "state_topic": STRING, "unit_of_measurement": (STRING, None)},
    "select": {**COMMON, "command_template": TEMPLATE, "command_topic": STRING, "optimistic": BOOLEAN,
               "options": LIST, "retain": BOOLEAN, "state_topic": STRING},
}
REQUIRED = {"sensor": ("platform", "state_topic", "unique_id"),
            "select": ("platform", "command_topic", "options", "unique_id")}

# sensor.markdown: the device classes we use, with the units each accepts (None: no unit).
UNITS = {"weight": {"kg", "g", "mg", "µg", "oz", "lb", "st"}, "battery": {"%"}, "temperature": {"°C", "°F", "K"},
         "carbon_dioxide": {"ppm"}, "timestamp": {None}, "enum": {None}}
SENSOR_DEVICE_CLASSES = {
    "apparent_power", "aqi", "area", "atmospheric_pressure", "battery", "blood_glucose_concentration",
    "carbon_dioxide", "carbon_monoxide", "current", "data_rate", "data_size", "date", "distance", "duration",
    "energy", "energy_storage", "enum", "frequency", "gas", "humidity", "illuminance", "irradiance", "moisture",
    "monetary", "nitrogen_dioxide", "nitrogen_monoxide", "nitrous_oxide", "ozone", "ph", "pm1", "pm25", "pm10",
    "power_factor", "power", "precipitation", "precipitation_intensity", "pressure", "reactive_power",
    "signal_strength", "sound_pressure", "speed", "sulphur_dioxide", "temperature", "timestamp",
    "volatile_organic_compounds", "volatile_organic_compounds_parts", "voltage", "volume", "volume_flow_rate",
    "volume_storage", "water", "weight", "wind_speed",
}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
ENTITY_CATEGORIES = {"config", "diagnostic"}
AVAILABILITY_MODES = {"all", "any", "latest"}


def _type_ok(value: Any, expected: Any) -> bool:
    if isinstance(expected, tuple):
        return any(_type_ok(value, one) for one in expected)
    return {
        None: value is None,
        STRING: isinstance(value, str),
        TEMPLATE: isinstance(value, str),
        BOOLEAN: isinstance(value, bool),
        INTEGER: isinstance(value, int) and not isinstance(value, bool),
        LIST: isinstance(value, list),
        MAP: isinstance(value, dict),
    }[expected]


def _keys(where: str, mapping: dict[str, Any], allowed: dict[str, Any]) -> list[str]:
    problems = []
    for key, value in mapping.items():
        if key not in allowed:
            problems.append(f"{where}: unknown key {key!r}")
        elif not _type_ok(value, allowed[key]):
            problems.append(f"{where}.{key}: {value!r} is not {allowed[key]}")
    return problems


def _availability(where: str, items: Any) -> list[str]:
    problems = []
    for index, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict) or "topic" not in item:
            problems.append(f"{where}.availability[{index}]: a map with a topic is required")
        else:
            problems += _keys(f"{where}.availability[{index}]", item, AVAILABILITY_ITEM)
    return problems


def _component(where: str, component: dict[str, Any]) -> list[str]:
    platform = component.get("platform")
    if platform not in PLATFORMS:
        return [f"{where}: platform {platform!r} is not one this check knows"]
    problems = _keys(where, component, PLATFORMS[platform])
    problems += [f"{where}: {key} is required" for key in REQUIRED[platform] if key not in component]
    problems += _availability(where, component.get("availability"))
    entity_id = component.get("default_entity_id")
    if entity_id is not None and not re.fullmatch(rf"{platform}\.[a-z0-9_]+", str(entity_id)):
        problems.append(f"{where}: default_entity_id {entity_id!r} is not {platform}.<lower-case object id>")
    if component.get("availability_mode", "latest") not in AVAILABILITY_MODES:
        problems.append(f"{where}: availability_mode must be one of {sorted(AVAILABILITY_MODES)}")
    if not 0 <= component.get("qos", 0) <= 2:
        problems.append(f"{where}: qos must be 0, 1 or 2")
    category = component.get("entity_category")
    if category is not None and category not in ENTITY_CATEGORIES:
        problems.append(f"{where}: entity_category {category!r} is not config or diagnostic")
    if platform == "sensor":
        problems += _sensor(where, component)
    if platform == "select" and not all(isinstance(option, str) for option in component.get("options", [])):
        problems.append(f"{where}: options must be strings")
    return problems


def _sensor(where: str, sensor: dict[str, Any]) -> list[str]:
    problems = []
    device_class = sensor.get("device_class")
    unit = sensor.get("unit_of_measurement")
    state_class = sensor.get("state_class")
    if device_class is not None and device_class not in SENSOR_DEVICE_CLASSES:
        problems.append(f"{where}: {device_class!r} is not a sensor device class")
    if device_class in UNITS and unit not in UNITS[device_class]:
        problems.append(f"{where}: unit {unit!r} is not one device class {device_class} accepts")
    if state_class is not None and state_class not in STATE_CLASSES:
        problems.append(f"{where}: state_class {state_class!r} is unknown")
    if device_class == "timestamp" and state_class is not None:
        problems.append(f"{where}: a timestamp (ISO 8601 text) is not a measurement: no state_class")
    if sensor.get("entity_category", "diagnostic") != "diagnostic":
        problems.append(f"{where}: a sensor's entity_category must be diagnostic")
    if "options" in sensor and (device_class != "enum" or state_class is not None or unit is not None):
        problems.append(f"{where}: options need device_class enum, and no state_class or unit")
    return problems


def problems_with(topic: str, config: dict[str, Any]) -> list[str]:
    """Everything Home Assistant's documentation says is wrong with a device discovery message."""
    match = DISCOVERY_TOPIC.match(topic)
    if match is None or match["component"] != "device":
        return [f"{topic}: not <prefix>/device/[<node_id>/]<object_id>/config"]
    problems = _keys("root", config, ROOT)
    for required in ("device", "origin", "components"):
        if not isinstance(config.get(required), dict):
            problems.append(f"root: {required} is required (a map)")
    device, origin = config.get("device") or {}, config.get("origin") or {}
    problems += _keys("device", device, DEVICE)
    if not device.get("identifiers") and not device.get("connections"):
        problems.append("device: at least one of identifiers or connections is required")
    for index, connection in enumerate(device.get("connections", [])):
        if not (isinstance(connection, list) and len(connection) == 2 and all(isinstance(x, str) for x in connection)):
            problems.append(f"device.connections[{index}]: must be [connection_type, connection_identifier]")
    problems += _keys("origin", origin, ORIGIN)
    if not isinstance(origin.get("name"), str):
        problems.append("origin: name is required")
    problems += _availability("root", config.get("availability"))
    unique_ids = set()
    for key, component in (config.get("components") or {}).items():
        where = f"components.{key}"
        if not ID.match(key):
            problems.append(f"{where}: a component id is [a-zA-Z0-9_-]+")
        if not isinstance(component, dict):
            problems.append(f"{where}: must be a map")
            continue
        problems += _component(where, component)
        if component.get("unique_id") in unique_ids:
            problems.append(f"{where}: unique_id {component['unique_id']!r} is used twice")
        unique_ids.add(component.get("unique_id"))
    return problems
