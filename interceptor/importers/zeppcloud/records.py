"""Zepp Life (Mi Fit) weight records → `CloudRecord`s, sans-I/O.

Fields are the reference's (cloud-and-formats.md §2, after SmartScaleConnect `pkg/zepp/client.go`
and README): `{generatedTime (s), deviceId (upper-case MAC without colons), memberId (-1: the account
owner), weightType, dataSource (1: weight), summary{...}}`. Records with a `weightType` other than 0
are skipped (SmartScaleConnect: "WeightType=3 has broken weight values"). `muscleRate` is kilograms
despite its name and `proteinRatio` a percentage (SmartScaleConnect's mapping); `impedance` is the
Mi Body Composition Scale 2's single-frequency impedance.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from interceptor.importers.cloud.records import CloudRecord, Skip, number, opened, pick, positive

OWNER_MEMBER = "-1"

METRICS = {
    "bmi": "bmi", "fatRate": "body_fat_pct", "bodyWaterRate": "water_pct", "boneMass": "bone_mass_kg",
    "metabolism": "bmr_kcal", "muscleRate": "muscle_mass_kg", "muscleAge": "metabolic_age",
    "proteinRatio": "protein_pct", "standBodyWeight": "ideal_weight_kg", "visceralFat": "visceral_fat",
    "bodyScore": "body_score", "bodyStyle": "body_type",
}
# Documented, without a vocabulary name: kept raw as zepp_<field>.
RAW = ("height", "encryptImpedance", "deviceType", "source")
METADATA = ("weight", "impedance")


def zepp_record(item: Any, family: dict[str, str], now: datetime) -> CloudRecord | Skip:
    """`family`: member id → the nickname the Zepp app shows."""
    if not isinstance(item, dict):
        return Skip("not a record")
    source = number(item.get("dataSource"))
    if source is not None and source != 1:
        return Skip(f"not a weight record (dataSource {source:g})")
    kind = number(item.get("weightType"))
    if kind not in (None, 0):
        return Skip(f"weightType {kind:g}: not a plain weigh-in (Zepp's weights there are unreliable)")
    found = opened(number(item.get("generatedTime")), item.get("summary"), "summary", now)
    if isinstance(found, Skip):
        return found
    when, summary, kilograms = found
    values = {"weight_kg": kilograms}
    if (impedance := positive(summary.get("impedance"))) is not None:
        values["impedance_ohm"] = impedance
    raw = {f"zepp_{name}": value for name in RAW if (value := number(summary.get(name))) is not None}
    unknown = frozenset(name for name in summary if name not in METRICS and name not in RAW and name not in METADATA)
    member = str(item.get("memberId", OWNER_MEMBER))
    device = item.get("deviceId")
    return CloudRecord(
        taken_at=when, key=f"{member}:{item.get('generatedTime')}", values=values,
        vendor_metrics=pick(summary, METRICS), raw=raw,
        member=None if member == OWNER_MEMBER else family.get(member),
        owner=member == OWNER_MEMBER, device=str(device) if device else None, unknown=unknown,
    )
