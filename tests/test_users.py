"""Who stood on the scale: device id first, then recent weight within tolerance, else nobody."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from interceptor.config import Person
from interceptor.model import Reading
from interceptor.users import assign_user, withings_user_id

ANNA = Person(slug="anna", name="Anna", short_name="ANN", sex="female", birth_date=date(1986, 4, 12), height_cm=168)
BEN = Person(slug="ben", name="Ben", short_name="BEN", sex="male", birth_date=date(1983, 9, 30), height_cm=181,
             withings_user_id=2507298)
KID = Person(slug="kid", name="Kid", short_name="KID", sex="male", birth_date=date(2015, 1, 1), height_cm=130,
             weight_range_kg=(20, 40))
HISTORY = {"anna": [61.0, 60.4, 60.9], "ben": [84.6, 85.0, 84.9, 85.3], "kid": []}
T = datetime(2024, 5, 1, 7, tzinfo=UTC)


def reading(weight: float, userid: str | None = None, source: str = "withings") -> Reading:
    return Reading(source=source, device_id="00:24:e4:00:00:01", taken_at=T, received_at=T, device_user_id=userid,
                   values={"weight_kg": weight})


def assign(weight: float, userid: str | None = None, tolerance: float = 2.5, history=HISTORY):
    return assign_user(reading(weight, userid), [ANNA, BEN, KID], lambda slug: history[slug], tolerance)


def test_the_device_user_id_wins_over_weight() -> None:
    assert assign(61.0, "2507298").user == "ben" and assign(61.0, "2507298").how == "device"
    assert assign(85.0, str(withings_user_id(ANNA))).user == "anna"


@pytest.mark.parametrize(("weight", "expected"), [
    (60.2, "anna"), (62.9, "anna"), (63.6, None), (86.1, "ben"), (88.0, None), (31.0, "kid"), (72.0, None),
])
def test_weight_proximity_and_ranges(weight: float, expected: str | None) -> None:
    chosen = assign(weight, "999")  # an id nobody has: falls back to weight
    assert chosen.user == expected
    assert chosen.how == ("weight" if expected else "none")


def test_two_people_of_nearly_the_same_weight_are_not_guessed_between() -> None:
    twins = {"anna": [70.0], "ben": [70.3], "kid": []}
    assert assign(70.1, history=twins).user is None
    assert assign(69.0, history=twins).user is None  # 1.0 kg against 1.3 kg: still too close to call
    twins_apart = {"anna": [68.0], "ben": [71.0], "kid": []}
    assert assign(68.4, history=twins_apart).user == "anna"


def test_environment_readings_belong_to_nobody() -> None:
    room = Reading(source="withings", kind="environment", device_id="d", taken_at=T, received_at=T,
                   values={"co2_ppm": 600})
    assert assign_user(room, [ANNA], lambda slug: [], 2.5).user is None
