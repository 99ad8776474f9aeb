"""The JSON columns of a measurement row: `metrics_text` and `numbers_text` write their own text for
speed, and must write exactly what the json module writes for the same values, byte for byte (stored
rows are compared, spliced into exports and re-read as they are)."""

from __future__ import annotations

import json
import math
from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interceptor.composition import Profile, compose
from interceptor.model import METRIC_UNITS, Confidence, Metric
from interceptor.store.measurements import dumps, metrics_text, numbers_text


def json_module(metrics: dict[str, Metric]) -> str:
    """The column as it was written before: the metrics as dicts through the json module."""
    return json.dumps({name: metric.as_json() for name, metric in metrics.items()}, separators=(",", ":"),
                      allow_nan=False)


TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
METRICS = st.dictionaries(
    st.one_of(st.sampled_from(sorted(METRIC_UNITS)), TEXT),
    st.builds(Metric, value=st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(), st.booleans()),
              unit=st.one_of(st.sampled_from(sorted(set(METRIC_UNITS.values()))), TEXT),
              method=st.one_of(st.sampled_from(["vendor", "xiaomi", "bmi", "mifflin1990"]), TEXT),
              confidence=st.one_of(st.sampled_from(get_args(Confidence)), TEXT)),  # type: ignore[arg-type]
    max_size=25,
)


@given(METRICS)
def test_metrics_text_is_what_the_json_module_writes(metrics: dict[str, Metric]) -> None:
    assert metrics_text(metrics) == json_module(metrics)


@pytest.mark.parametrize("weight", [3.5, 48.25, 61.0, 84.45, 120.0, 250.0])
@pytest.mark.parametrize("sex", ["female", "male"])
def test_metrics_of_composed_weigh_ins_are_what_the_json_module_writes(weight: float, sex: str) -> None:
    vendor = {"body_fat_pct": 21.3, "water_pct": 55.1, "bone_mass_kg": 2.9, "visceral_fat": 7.0}
    for profile in (Profile(sex, 34.2, 172.0), Profile(sex, 9.5, 131.0)):  # type: ignore[arg-type]
        for readings, vendor_metrics in (({"weight_kg": weight}, None), ({"weight_kg": weight}, vendor),
                                         ({"weight_kg": weight, "impedance_ohm": 480.0}, None)):
            metrics = compose(readings, profile, vendor_metrics=vendor_metrics).metrics
            assert metrics and metrics_text(metrics) == json_module(metrics)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_metric_is_refused_as_the_json_module_refuses_it(value: float) -> None:
    metrics = {"bmi": Metric(value, "kg/m2", "bmi", "anthropometric")}
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        json_module(metrics)
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        metrics_text(metrics)


def test_no_metrics_is_an_empty_object() -> None:
    assert metrics_text({}) == "{}"


NUMBER = st.one_of(st.floats(), st.integers(), st.booleans())


@given(st.dictionaries(st.one_of(st.sampled_from(sorted(METRIC_UNITS)), TEXT), NUMBER, max_size=12))
def test_numbers_text_is_what_the_json_module_writes(values: dict[str, float]) -> None:
    try:
        expected = dumps(values)
    except ValueError:  # a NaN or an infinity: refused alike
        with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
            numbers_text(values)
    else:
        assert numbers_text(values) == expected == json.dumps(values, separators=(",", ":"))


def test_numbers_named_by_numbers_are_written_as_the_json_module_writes_them() -> None:
    values = {1: 2.5, "weight_kg": 80.0, 2.5: 1}
    assert numbers_text(values) == dumps(values) == '{"1":2.5,"weight_kg":80.0,"2.5":1}'  # type: ignore[arg-type]
