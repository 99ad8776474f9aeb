"""The values that travel through the funnel: what a device said, and what we stored.

Every source (Withings HTTP, BLE, MQTT, importers, capture replay) turns bytes into `Reading`s; the
pipeline turns a `Reading` into a `Measurement` and writes it to the journal. Quantity names are the
DESIGN.md vocabulary and are the same in JSON, journal, InfluxDB, MQTT and CSV.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Kind = Literal["body", "environment"]

# The sources that are scales speaking now (withings/routes.py and ble/frames.py SOURCE). Everything
# else (export files, the Xiaomi and Zepp clouds) is history, which the sinks that push the news
# (Home Assistant's states, Garmin Connect) leave alone and the household page lists apart from the scales.
# BLE gateways (source `gateway`, interceptor/ble/gateways.py) are not in it: they make no weigh-ins,
# and each place that shows devices lists them apart from the scales.
LIVE_SOURCES = frozenset({"withings", "ble"})

# Reading names (DESIGN.md "Vocabulary") and the unit each carries in its name.
READING_UNITS: dict[str, str] = {
    "weight_kg": "kg",
    "impedance_ohm": "ohm",
    "impedance_high_ohm": "ohm",
    "impedance_low_ohm": "ohm",
    "heart_rate_bpm": "bpm",
    "withings_type16": "",
    "temperature_c": "°C",
    "co2_ppm": "ppm",
    "battery_pct": "%",
}

# Metric names (DESIGN.md "Vocabulary") and their display units.
METRIC_UNITS: dict[str, str] = {
    "bmi": "kg/m²",
    "body_fat_pct": "%",
    "fat_mass_kg": "kg",
    "fat_free_mass_kg": "kg",
    "muscle_mass_kg": "kg",
    "skeletal_muscle_mass_kg": "kg",
    "water_pct": "%",
    "bone_mass_kg": "kg",
    "visceral_fat": "",
    "bmr_kcal": "kcal",
    "metabolic_age": "years",
    "protein_pct": "%",
    "ffmi": "kg/m²",
    "ideal_weight_kg": "kg",
    "body_score": "",
    # Beyond DESIGN.md's list, for what issue 5 asks: the S400's water compartments (literature) and
    # the Zepp app's body type and fat-to-lose (approximate), and FFMI normalised to 1.8 m.
    "extracellular_water_kg": "kg",
    "intracellular_water_kg": "kg",
    "body_type": "",
    "fat_mass_to_ideal_kg": "kg",
    "ffmi_normalised": "kg/m²",
}


READING_NAMES = frozenset(READING_UNITS)
METRIC_NAMES = frozenset(METRIC_UNITS)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return value.astimezone(UTC)


class Reading(BaseModel):
    """What one device reported about one moment, in SI units, before any interpretation.

    `device_user_id` is the device's own idea of who stood on it (Withings `userid`, S400 profile
    id); `vendor_metrics` are values the device itself computed (e.g. Withings type 6, fat ratio);
    `raw` keeps values whose meaning we do not know, under `<source>_type_<n>` keys, so nothing a
    scale says is thrown away.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    kind: Kind = "body"
    device_id: str
    device_model: str | None = None
    taken_at: datetime
    received_at: datetime
    device_user_id: str | None = None
    values: dict[str, float] = Field(default_factory=dict)
    vendor_metrics: dict[str, float] = Field(default_factory=dict)
    raw: dict[str, float] = Field(default_factory=dict)

    _utc_taken = field_validator("taken_at", "received_at")(_as_utc)

    @field_validator("values")
    @classmethod
    def _known_reading_names(cls, values: dict[str, float]) -> dict[str, float]:
        if not READING_NAMES.issuperset(values):  # every reading is checked: no sets built unless wrong
            unknown = set(values) - READING_NAMES
            raise ValueError(f"unknown reading names {sorted(unknown)}; known: {sorted(READING_UNITS)}")
        return values

    @field_validator("vendor_metrics")
    @classmethod
    def _known_metric_names(cls, values: dict[str, float]) -> dict[str, float]:
        if not METRIC_NAMES.issuperset(values):
            unknown = set(values) - METRIC_NAMES
            raise ValueError(f"unknown metric names {sorted(unknown)}; known: {sorted(METRIC_UNITS)}")
        return values

    @property
    def identity(self) -> str:
        """Stable identity: the same weigh-in re-sent or re-imported maps to the same key."""
        return f"{self.source}:{self.device_id}:{self.kind}:{int(self.taken_at.timestamp())}"


Confidence = Literal["vendor", "vendor-approximate", "unverified", "literature", "anthropometric", "calibrated"]


@dataclass(slots=True)
class Metric:
    """One computed (or vendor-reported) quantity; never shown without the method behind it.

    A plain slotted dataclass, not a pydantic model: a weigh-in carries some twenty of them, built by
    the composition engine and read back from the journal on every row, where pydantic's construction
    and dump cost more than everything else about them (every producer is this codebase). Not frozen
    either, which would double its construction cost: nothing changes a Metric once made."""

    value: float
    unit: str
    method: str
    confidence: Confidence

    def as_json(self) -> dict[str, object]:
        return {"value": self.value, "unit": self.unit, "method": self.method, "confidence": self.confidence}


class Measurement(BaseModel):
    """A reading as stored in the journal: attributed to a person, with its metrics."""

    model_config = ConfigDict(frozen=True)

    id: int
    identity: str
    kind: Kind
    source: str
    device_id: str
    device_model: str | None
    user: str | None
    taken_at: datetime
    received_at: datetime
    readings: dict[str, float]
    metrics: dict[str, Metric]
    assignment: str = "none"  # how `user` was decided: "device", "weight", "manual", "import" or "none"
    refusals: dict[str, str] = Field(default_factory=dict)  # metric → why it was left out
    raw: dict[str, float] = Field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        """The public JSON shape (`interceptor measurements list --format json`)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "taken_at": iso_utc(self.taken_at),
            "received_at": iso_utc(self.received_at),
            "source": self.source,
            "device_id": self.device_id,
            "device_model": self.device_model,
            "user": self.user,
            "assigned_by": self.assignment,
            "readings": dict(self.readings),
            "metrics": {name: metric.as_json() for name, metric in self.metrics.items()},
            "refusals": dict(self.refusals),
            "raw": dict(self.raw),
        }


class DeviceState(BaseModel):
    """What a device last told us about itself (battery, firmware), and when we last heard it."""

    model_config = ConfigDict(frozen=True)

    device_id: str
    source: str
    model: str | None = None
    firmware: str | None = None
    battery_pct: float | None = None
    manufacturing_id: str | None = None
    first_seen: datetime
    last_seen: datetime
    # What the radio link says (journal table device_radio): a gateway's client address and frames
    # delivered, a BLE scale's signal when last heard and the gateway that heard it.
    address: str | None = None
    frames: int = 0
    rssi_dbm: int | None = None
    heard_by: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "device_id": self.device_id,
            "source": self.source,
            "model": self.model,
            "firmware": self.firmware,
            "battery_pct": self.battery_pct,
            "manufacturing_id": self.manufacturing_id,
            "first_seen": iso_utc(self.first_seen),
            "last_seen": iso_utc(self.last_seen),
            "address": self.address,
            "frames": self.frames,
            "rssi_dbm": self.rssi_dbm,
            "heard_by": self.heard_by,
        }


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, whole seconds unless the moment has a fraction."""
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def utc_from_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)
