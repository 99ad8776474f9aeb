"""Journal items → InfluxDB line protocol, sans-I/O, following docs/schema.md.

Escaping per the InfluxDB line-protocol reference: measurement names escape commas and spaces; tag
keys, tag values and field keys escape commas, equals signs and spaces (a backslash stays as it is:
InfluxDB only unescapes those three, as a round trip through influxd 1.6.7 shows); string field
values escape double quotes and backslashes. Every numeric field is a float so a field never
changes type.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from interceptor.model import Measurement
from interceptor.store.journal import DeviceReport, Tx
from interceptor.store.measurements import GUEST

UNASSIGNED = "unassigned"
UNKNOWN_MODEL = "unknown"
NO_METHOD = "none"
# Metrics that are pure anthropometry: they never decide the `method` tag of a point.
ANTHROPOMETRIC = "anthropometric"


def _escape_key(text: str) -> str:
    # A trailing backslash would escape the separator after it, and cannot be written: drop it.
    return text.rstrip("\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _escape_measurement(text: str) -> str:
    return text.rstrip("\\").replace(",", "\\,").replace(" ", "\\ ")


def _string_field(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tag_value(text: str) -> str:
    # An empty tag value is not allowed in line protocol; newlines would end the point.
    cleaned = text.replace("\n", " ").replace("\r", " ").strip().rstrip("\\")
    return _escape_key(cleaned or UNKNOWN_MODEL)


def line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, float | str], timestamp_s: int) -> str:
    """One point; tags sorted (InfluxDB's recommendation for write speed), non-finite floats dropped."""
    tag_text = "".join(f",{_escape_key(key)}={_tag_value(value)}" for key, value in sorted(tags.items()))
    parts = []
    for key, value in fields.items():
        if isinstance(value, str):
            parts.append(f"{_escape_key(key)}={_string_field(value)}")
        elif math.isfinite(value):
            parts.append(f"{_escape_key(key)}={float(value)!r}")
    if not parts:
        raise ValueError(f"a {measurement} point needs at least one finite field")
    return f"{_escape_measurement(measurement)}{tag_text} {','.join(parts)} {timestamp_s}"


def composition_method(measurement: Measurement) -> str:
    """The method of the point's body-composition metrics: body fat's if there is one, else the first
    non-anthropometric metric's, else `anthropometric` when only BMI and friends were computed."""
    metrics = measurement.metrics
    if "body_fat_pct" in metrics:
        return metrics["body_fat_pct"].method
    for metric in metrics.values():
        if metric.confidence != ANTHROPOMETRIC:
            return metric.method
    return ANTHROPOMETRIC if metrics else NO_METHOD


def measurement_tags(measurement: Measurement) -> dict[str, str]:
    tags = {
        "device": measurement.device_id,
        "model": measurement.device_model or UNKNOWN_MODEL,
        "source": measurement.source,
    }
    if measurement.kind == "body":
        tags["user"] = measurement.user or (GUEST if measurement.assignment == GUEST else UNASSIGNED)
        tags["method"] = composition_method(measurement)
    return tags


def measurement_line(measurement: Measurement) -> str | None:
    """`body` or `environment` point; None when the measurement carries no numeric value at all."""
    fields: dict[str, float | str] = dict(measurement.readings)
    if measurement.kind == "body":
        fields.update({name: metric.value for name, metric in measurement.metrics.items()})
    if not fields:
        return None
    return line(measurement.kind, measurement_tags(measurement), fields, int(measurement.taken_at.timestamp()))


def device_line(report: DeviceReport) -> str | None:
    fields: dict[str, float | str] = {}
    if report.battery_pct is not None:
        fields["battery_pct"] = float(report.battery_pct)
    if report.firmware is not None:
        fields["firmware"] = report.firmware
    if not fields:
        return None
    tags = {"device": report.device_id, "model": report.model or UNKNOWN_MODEL, "source": report.source}
    return line("device", tags, fields, int(report.seen_at.timestamp()))


class LineProtocol:
    """The InfluxDB sink's renderer for the journal's outbox (`journal.Renderer`)."""

    def measurement(self, measurement: Measurement, tx: Tx) -> str | None:
        return measurement_line(measurement)

    def revision(self, old: Measurement, new: Measurement, tx: Tx) -> str | None:
        """The new point (a point is overwritten by one with the same tags and time)."""
        return measurement_line(new)

    def device(self, report: DeviceReport, tx: Tx) -> str | None:
        return device_line(report)

    def retraction(self, old: Measurement, new: Measurement) -> dict[str, str] | None:
        """A point is its measurement, tags and time: a new user or method tag makes a new point,
        so the old one must go, or the weigh-in would show twice (once under each person)."""
        old_tags = measurement_tags(old)
        if old_tags == measurement_tags(new):
            return None
        return {**old_tags, "_measurement": old.kind, "_time": str(int(old.taken_at.timestamp()))}
