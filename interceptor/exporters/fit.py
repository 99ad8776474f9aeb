"""Garmin FIT weight-scale files, ready for Garmin Connect's import page (or its upload API).

Each file is a `file_id` (type weight, manufacturer Garmin, product Index smart scale, as
SmartScaleConnect writes it) and one `weight_scale` message (global 30) per weigh-in, written with
Garmin's own FIT SDK, which applies the profile's scales (weight, fat, hydration, bone and muscle ×100,
BMR ×4, BMI ×10: reference cloud-and-formats.md §4.3). What Garmin enforces on top:

- at most `MAX_PER_FILE` weigh-ins per file ("Garmin fails on big files", SmartScaleConnect);
- visceral fat rating and metabolic age as integers (a decimal made Garmin reject the upload:
  lswiderski/WebBodyComposition#1);
- `muscle_mass` carries skeletal muscle, which is what Garmin measures and shows (SmartScaleConnect
  README; lswiderski/mi-scale-exporter#69), and is left out when skeletal muscle is unknown: total
  muscle (some 70 kg where skeletal is 40) would read as a skeletal muscle far too high;
- BMI always, or Garmin's apps show none (kochka/WeightLogger#56).

Values outside a field's range (a uint8 rating over 254) are left out rather than wrapped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from garmin_fit_sdk import Encoder

from interceptor.model import Measurement

MAX_PER_FILE = 200
FILE_ID, WEIGHT_SCALE = 0, 30
FILE_TYPE_WEIGHT = 9
MANUFACTURER_GARMIN = 1
PRODUCT_INDEX_SMART_SCALE = 2429
SERIAL_NUMBER = 1234  # what SmartScaleConnect writes; Garmin does not check it
UINT8_MAX = 254  # 255 is "invalid" in FIT
UINT16_MAX = 65534


def _metric(measurement: Measurement, name: str) -> float | None:
    metric = measurement.metrics.get(name)
    return None if metric is None else metric.value


def weight_scale(measurement: Measurement) -> dict[str, object] | None:
    """The `weight_scale` message of a weigh-in (None without a weight), in the units the profile
    names; the SDK applies the scales."""
    weight = measurement.readings.get("weight_kg")
    if weight is None:
        return None
    message: dict[str, object] = {"mesg_num": WEIGHT_SCALE, "timestamp": measurement.taken_at, "weight": weight}
    scaled = {
        "percent_fat": (_metric(measurement, "body_fat_pct"), 100),
        "percent_hydration": (_metric(measurement, "water_pct"), 100),
        "bone_mass": (_metric(measurement, "bone_mass_kg"), 100),
        "muscle_mass": (_metric(measurement, "skeletal_muscle_mass_kg"), 100),  # Garmin's is skeletal
        "basal_met": (_metric(measurement, "bmr_kcal"), 4),
        "bmi": (_metric(measurement, "bmi"), 10),
    }
    for field, (value, scale) in scaled.items():
        if value is not None and 0 < value * scale <= UINT16_MAX:
            message[field] = value
    whole = {
        "visceral_fat_rating": _metric(measurement, "visceral_fat"),
        "metabolic_age": _metric(measurement, "metabolic_age"),
        "physique_rating": _metric(measurement, "body_type"),
    }
    for field, value in whole.items():
        if value is not None and 0 < round(value) <= UINT8_MAX:
            message[field] = round(value)
    return message


def encode(messages: list[dict[str, object]], created: datetime) -> bytes:
    encoder = Encoder()
    encoder.write_mesg({"mesg_num": FILE_ID, "type": FILE_TYPE_WEIGHT, "manufacturer": MANUFACTURER_GARMIN,
                        "product": PRODUCT_INDEX_SMART_SCALE, "serial_number": SERIAL_NUMBER,
                        "time_created": created})
    for message in messages:
        encoder.write_mesg(message)
    return bytes(encoder.close())


def files(measurements: Iterable[Measurement], created: datetime) -> Iterator[tuple[bytes, list[Measurement]]]:
    """FIT files of at most `MAX_PER_FILE` weigh-ins each, with the weigh-ins each holds, as the
    journal yields them: memory holds one file's worth."""
    batch: list[Measurement] = []
    messages: list[dict[str, object]] = []
    for measurement in measurements:
        message = weight_scale(measurement)
        if message is None:
            continue
        batch.append(measurement)
        messages.append(message)
        if len(batch) == MAX_PER_FILE:
            yield encode(messages, created), batch
            batch, messages = [], []
    if batch:
        yield encode(messages, created), batch
