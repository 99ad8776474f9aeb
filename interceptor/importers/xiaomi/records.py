"""Xiaomi Home and Mi Fitness scale records → `CloudRecord`s, sans-I/O.

Field names and units are the reference's (cloud-and-formats.md §1.3, after SmartScaleConnect
`pkg/xiaomi/client.go` and its README):

* Xiaomi Home (`getUserDataByPage`, `getData`): `{createTime (ms), did, accountId, fromSource, data}`,
  `data` a JSON string of abbreviations (`weight, bfp, bwp, ...`). `fromSource` 2 writes any value as a
  string; `fromSource` 3 nests the body values in `bodyResData`, another JSON string. The time is
  `createTime`: the inner `time` is seconds or milliseconds depending on `reportFrom`.
* Mi Fitness (`get_fitness_data_by_time`): `{sid, key, time (s), value}`, `value` a JSON string with
  long names (`body_fat_rate, moisture_rate, ...`); only `key == "weight"` is a weigh-in.

`muscle_mass` is taken as kilograms, as SmartScaleConnect does (garmin-weight-sync instead derives
kilograms from `muscle_rate`; the percentage is kept raw so both readings stay possible).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from interceptor.importers.cloud.records import (
    CloudRecord,
    Skip,
    impedances,
    json_object,
    number,
    opened,
    pick,
    positive,
)

MANUAL_REPORT = "UserEditor"

HOME_METRICS = {
    "bmi": "bmi", "bfp": "body_fat_pct", "bwp": "water_pct", "bmc": "bone_mass_kg", "ma": "metabolic_age",
    "slm": "muscle_mass_kg", "bt": "body_type", "pp": "protein_pct", "vfl": "visceral_fat", "bmr": "bmr_kcal",
    "sbc": "body_score", "smm": "skeletal_muscle_mass_kg", "swt": "ideal_weight_kg", "bfm": "fat_mass_kg",
    "ffm": "fat_free_mass_kg",
}
HOME_READINGS = {"heartRate": "heart_rate_bpm"}
# Documented fields without a name in our vocabulary: protein mass, waist-hip ratio, muscle %, bone %,
# water mass, muscle/weight/fat control, and fromSource 3's wl, hl, smi. Kept raw as xiaomi_<field>.
HOME_RAW = ("pm", "whr", "slp", "bmcp", "bwm", "mc", "wc", "fc", "wl", "hl", "smi")
HOME_METADATA = ("weight", "bodyRes", "bodyRes2", "bodyResData", "reportFrom", "user", "time", "miid", "duid",
                 "userType", "status", "idx", "mid")

FITNESS_METRICS = {
    "bmi": "bmi", "body_fat_rate": "body_fat_pct", "moisture_rate": "water_pct", "bone_mass": "bone_mass_kg",
    "body_age": "metabolic_age", "muscle_mass": "muscle_mass_kg", "protein_rate": "protein_pct",
    "basal_metabolism": "bmr_kcal", "body_score": "body_score", "visceral_fat": "visceral_fat",
    "skeletal_muscle_mass": "skeletal_muscle_mass_kg", "fat_free_body": "fat_free_mass_kg",
    "fat_mass": "fat_mass_kg", "standard_weight": "ideal_weight_kg", "somatotype": "body_type",
}
FITNESS_READINGS = {"bpm": "heart_rate_bpm"}
FITNESS_RAW = ("body_moisture_mass", "bone_rate", "muscle_rate", "protein_mass", "fat_control", "muscle_control",
               "weight_control", "whr", "score_standard_type", "standard_weight_v2", "limbs_skeletal_muscle_index",
               "recommended_calories_intake", "body_shape")
FITNESS_SEGMENT_PREFIXES = ("left_", "right_", "trunk_")
FITNESS_METADATA = ("weight", "time")


def _rest(fields: dict[str, Any], prefix: str, mapped: set[str], documented: set[str]) -> tuple[dict[str, float],
                                                                                               frozenset[str]]:
    """Numeric fields not mapped to the vocabulary (kept raw) and the names nobody documented."""
    raw = {f"{prefix}{name}": value for name, item in fields.items()
           if name not in mapped and (value := number(item)) is not None}
    unknown = frozenset(name for name in fields if name not in mapped and name not in documented)
    return raw, unknown


def home_record(item: Any, now: datetime) -> CloudRecord | Skip:
    if not isinstance(item, dict):
        return Skip("not a record")
    created = number(item.get("createTime"))
    found = opened(None if created is None else created / 1000, item.get("data"), "data", now)
    if isinstance(found, Skip):
        return found
    when, data, kilograms = found
    source = number(item.get("fromSource"))
    fields = dict(data)
    if source == 3:
        nested = json_object(data.get("bodyResData"))
        if nested is not None:
            fields = {**nested, **{name: value for name, value in data.items() if name != "bodyResData"}}
    values = {"weight_kg": kilograms, **pick(fields, HOME_READINGS),
              **impedances(fields.get("bodyRes"), fields.get("bodyRes2"))}
    metrics = pick(fields, HOME_METRICS)
    mapped = {*HOME_METRICS, *HOME_READINGS, *HOME_METADATA}
    raw, unknown = _rest(fields, "xiaomi_", mapped, set(HOME_RAW))
    if source is not None:
        raw["xiaomi_from_source"] = source
    user = fields.get("user") if isinstance(fields.get("user"), dict) else {}
    name = user.get("name") if isinstance(user.get("name"), str) and user.get("name", "").strip() else None
    if (height := positive(user.get("height"))) is not None:
        raw["xiaomi_user_height_cm"] = height
    account = item.get("accountId")
    did = item.get("did")
    return CloudRecord(
        taken_at=when, key=f"{did}:{int(created or 0)}:{account}", values=values, vendor_metrics=metrics, raw=raw,
        member=name.strip() if name else None, owner=name is None and account in (0, "0", None),
        device=str(did) if did not in (None, 0, "0", "") else None,
        manual=fields.get("reportFrom") == MANUAL_REPORT, unknown=unknown,
    )


def fitness_record(item: Any, now: datetime) -> CloudRecord | Skip:
    if not isinstance(item, dict):
        return Skip("not a record")
    if item.get("key") != "weight":
        return Skip(f"not a weigh-in (key {str(item.get('key'))[:24]!r})", other=True)
    found = opened(number(item.get("time")), item.get("value"), "value", now)
    if isinstance(found, Skip):
        return found
    when, fields, kilograms = found
    values = {"weight_kg": kilograms, **pick(fields, FITNESS_READINGS)}
    mapped = {*FITNESS_METRICS, *FITNESS_READINGS, *FITNESS_METADATA}
    documented = {*FITNESS_RAW, *(name for name in fields if name.startswith(FITNESS_SEGMENT_PREFIXES))}
    raw, unknown = _rest(fields, "mifitness_", mapped, documented)
    sid = item.get("sid")
    return CloudRecord(
        taken_at=when, key=f"{sid}:{item.get('time')}", values=values, vendor_metrics=pick(fields, FITNESS_METRICS),
        raw=raw, device=str(sid) if sid else None, unknown=unknown,
    )
