"""What Home Assistant shows: one table from our vocabulary (interceptor/model.py) to entity keys.

The person keys are the ones bodymiscale users already have on their dashboards (dckiller51/
bodymiscale `sensor.py`, listed in reference/ecosystem.md §2.1), so a dashboard or automation written
for bodymiscale keeps its keys. Units are SI as stored; Home Assistant converts a `weight` device class
to lb or st for display. Impedance has no device class (Home Assistant has none; OpenMQTTGateway's
`impedance` class made Home Assistant reject the whole config, ecosystem.md §2.2).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entity:
    """One sensor. `key` is the bodymiscale key, our state document's field and the end of the
    entity's unique id; `source` the vocabulary name its value comes from (None: derived)."""

    key: str
    name: str  # shown after the device's name: "Anna" + "Weight"
    source: str | None
    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = "measurement"
    precision: int | None = None
    diagnostic: bool = False
    force_update: bool = False  # a repeated identical value is still an event


def _timestamp(key: str, name: str, *, diagnostic: bool = False) -> Entity:
    # A timestamp sensor takes no unit and no state class.
    return Entity(key, name, None, device_class="timestamp", state_class=None, diagnostic=diagnostic)


# One device per person: what their latest weigh-in says.
PERSON = (
    Entity("weight", "Weight", "weight_kg", "kg", "weight", precision=2, force_update=True),
    Entity("bmi", "BMI", "bmi", "kg/m²", precision=1),
    Entity("body_fat", "Body fat", "body_fat_pct", "%", precision=1),
    Entity("fat_mass", "Fat mass", "fat_mass_kg", "kg", "weight", precision=2),
    Entity("lean_body_mass", "Lean body mass", "fat_free_mass_kg", "kg", "weight", precision=2),
    Entity("water", "Water", "water_pct", "%", precision=1),
    Entity("bone_mass", "Bone mass", "bone_mass_kg", "kg", "weight", precision=2),
    Entity("muscle_mass", "Muscle mass", "muscle_mass_kg", "kg", "weight", precision=2),
    Entity("skeletal_muscle_mass", "Skeletal muscle mass", "skeletal_muscle_mass_kg", "kg", "weight", precision=2),
    Entity("protein", "Protein", "protein_pct", "%", precision=1),
    Entity("visceral_fat", "Visceral fat", "visceral_fat", precision=0),
    Entity("basal_metabolism", "Basal metabolism", "bmr_kcal", "kcal", precision=0),
    Entity("metabolic_age", "Metabolic age", "metabolic_age", "years", precision=0),
    Entity("body_score", "Body score", "body_score", precision=0),
    Entity("heart_rate", "Heart rate", "heart_rate_bpm", "bpm", precision=0),
    Entity("impedance", "Impedance", "impedance_ohm", "Ω", precision=0, diagnostic=True),
    Entity("impedance_low", "Impedance low frequency", "impedance_low_ohm", "Ω", precision=0, diagnostic=True),
    Entity("impedance_high", "Impedance high frequency", "impedance_high_ohm", "Ω", precision=0, diagnostic=True),
    _timestamp("last_measurement_time", "Last measurement"),
)

# One device per scale: what it said about itself, and (WS-50) about the room.
SCALE = (
    Entity("battery", "Battery", "battery_pct", "%", "battery", precision=0, diagnostic=True),
    Entity("firmware", "Firmware", None, state_class=None, diagnostic=True),
    _timestamp("last_seen", "Last seen", diagnostic=True),
    _timestamp("last_weigh_in", "Last weigh-in"),
)
# One device per BLE gateway: when it last delivered (or said it is alive); its version is the
# device's `sw_version`, its address and frames delivered the attributes.
GATEWAY = (_timestamp("last_seen", "Last seen"),)
ROOM = (
    Entity("temperature", "Temperature", "temperature_c", "°C", "temperature", precision=1),
    Entity("carbon_dioxide", "Carbon dioxide", "co2_ppm", "ppm", "carbon_dioxide", precision=0),
)

# The household: weigh-ins nobody is assigned to yet.
UNASSIGNED = Entity("unassigned_weigh_ins", "Unassigned weigh-ins", None, precision=0)
ASSIGN_KEY = "assign_latest_weigh_in"
ASSIGN_NAME = "Assign latest weigh-in"
