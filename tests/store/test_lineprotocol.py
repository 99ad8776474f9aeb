"""Line protocol: whatever a user names a person or a scale, the point reads back exactly."""

from __future__ import annotations

import math
import urllib.request
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interceptor.model import Measurement, Metric
from interceptor.store import lineprotocol
from tests.conftest import Influx

T = datetime(2024, 3, 1, 6, 45, 12, tzinfo=UTC)


def body(user: str | None, model: str | None, metrics: dict[str, Metric] | None = None) -> Measurement:
    return Measurement(id=1, identity="x", kind="body", source="withings", device_id="00:24:e4:06:59:dc",
                       device_model=model, user=user, taken_at=T, received_at=T,
                       readings={"weight_kg": 84.683, "withings_type16": 559.0}, metrics=metrics or {})


def test_method_tag_and_tags_follow_the_schema() -> None:
    metrics = {
        "bmi": Metric(value=27.9, unit="kg/m²", method="bmi", confidence="anthropometric"),
        "body_fat_pct": Metric(value=24.1, unit="%", method="deurenberg1991", confidence="literature"),
    }
    text = lineprotocol.measurement_line(body("anna", "WS-50", metrics))
    assert text == ("body,device=00:24:e4:06:59:dc,method=deurenberg1991,model=WS-50,source=withings,user=anna"
                    " weight_kg=84.683,withings_type16=559.0,bmi=27.9,body_fat_pct=24.1 1709275512")
    unassigned = lineprotocol.measurement_line(body(None, None))
    assert ",user=unassigned" in unassigned and ",model=unknown" in unassigned and ",method=none" in unassigned


def test_non_finite_values_are_dropped_and_an_empty_point_is_refused() -> None:
    assert lineprotocol.line("body", {}, {"a": math.nan, "b": 1.0}, 0) == "body b=1.0 0"
    with pytest.raises(ValueError, match="at least one finite field"):
        lineprotocol.line("body", {}, {"a": math.inf}, 0)


tag_text = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=12).filter(str.strip)


@settings(max_examples=200, deadline=None)
@given(tag_text, tag_text, st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_rendering_never_produces_a_line_break_and_keeps_three_sections(user: str, model: str, value: float) -> None:
    text = lineprotocol.line("body", {"user": user, "model": model}, {"weight_kg": value}, 1)
    assert "\n" not in text
    assert text.endswith(" 1")


def test_awkward_names_round_trip_through_a_real_influxd(influxd: Influx) -> None:
    database = f"lp_{uuid.uuid4().hex[:8]}"
    influxd.query(f'CREATE DATABASE "{database}"')
    awkward = ['Ann, the "first"', "Bob=Rob", "Zoë Müller", "back\\slash", "tab\tand space ", "a=b,c d"]
    lines = [lineprotocol.line("body", {"user": name, "model": name}, {"weight_kg": 70.0 + index,
                                                                        "firmware": name}, 1700000000 + index)
             for index, name in enumerate(awkward)]
    request = urllib.request.Request(f"{influxd.url}/write?db={database}&precision=s",
                                     data="\n".join(lines).encode())
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204
    rows = influxd.query('SELECT "weight_kg", "firmware", "user", "model" FROM "body"', database)
    values = rows["results"][0]["series"][0]["values"]
    assert [(row[2], row[3], row[4]) for row in values] == [(name, name.strip(), name.strip()) for name in awkward]
