"""Who stood on the scale, in this order: the device's own user id when it maps to a configured
person; else the person whose recent weights are closest, within a tolerance (and inside their
weight range, if they set one); else nobody (unassigned, to be assigned by hand).

The Withings scale echoes the `id` we sent in `sp.users` as `userid`; a person without a configured
`withings_user_id` gets one derived from their slug, stable across restarts and config reorderings,
so a household works without anyone looking up ids.
"""

from __future__ import annotations

import functools
import statistics
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from interceptor.ble.settings import BleSettings
from interceptor.ble.users import ble_user
from interceptor.config import Person
from interceptor.model import Reading


def age_in_years(birth: date, at: datetime) -> float:
    """Decimal age at a moment: what the scale shows as `agt` (21.3) and the formulas take as age."""
    return (at - _birth_moment(birth)).total_seconds() / (365.2425 * 86400)


@functools.lru_cache(maxsize=64)
def _birth_moment(birth: date) -> datetime:
    """Made once per birth date: an import asks a household's few for every weigh-in."""
    return datetime(birth.year, birth.month, birth.day, tzinfo=UTC)


def withings_user_id(person: Person) -> int:
    """The configured id, else an 8-digit id derived from the slug (real ids are 7–8 digits)."""
    if person.withings_user_id is not None:
        return person.withings_user_id
    return 10_000_000 + zlib.crc32(person.slug.encode("utf-8")) % 90_000_000


# How many of a person's latest weigh-ins describe their weight now, and how much closer the best
# candidate must be than the next one: two people of nearly the same weight are not guessed between.
RECENT_WEIGHINS = 5
AMBIGUITY_MARGIN_KG = 0.5

RecentWeights = Callable[[str], Sequence[float]]


@dataclass(frozen=True)
class Assignment:
    user: str | None
    how: str  # "device" | "weight" | "manual" | "import" | "none"


def by_device(reading: Reading, people: Sequence[Person], ble_settings: BleSettings | None = None) -> str | None:
    """The person the device itself named: a Withings `userid`, or an S400 profile id mapped in [ble]."""
    if reading.device_user_id is None:
        return None
    if reading.source == "withings":
        for person in people:
            if str(withings_user_id(person)) == reading.device_user_id:
                return person.slug
    if ble_settings is not None:
        slug = ble_user(reading, ble_settings)
        if slug is not None and any(person.slug == slug for person in people):
            return slug
    return None


def by_weight(weight_kg: float, people: Sequence[Person], recent: RecentWeights, tolerance_kg: float) -> str | None:
    """The person whose median recent weight is nearest, if within tolerance and unambiguous; a person
    with no history yet can still be chosen by their weight range alone, if they are the only fit."""
    distances: list[tuple[float, str]] = []
    for person in people:
        low, high = person.weight_range_kg or (0.0, float("inf"))
        if not low <= weight_kg <= high:
            continue
        history = recent(person.slug)
        if history:
            distance = abs(weight_kg - statistics.median(history))
            if distance <= tolerance_kg:
                distances.append((distance, person.slug))
        elif person.weight_range_kg is not None:
            distances.append((tolerance_kg, person.slug))  # fits the range, nothing better known
    distances.sort()
    if not distances:
        return None
    if len(distances) > 1 and distances[1][0] - distances[0][0] < AMBIGUITY_MARGIN_KG:
        return None
    return distances[0][1]


def assign_user(
    reading: Reading,
    people: Sequence[Person],
    recent: RecentWeights,
    tolerance_kg: float,
    ble_settings: BleSettings | None = None,
) -> Assignment:
    if reading.kind != "body":
        return Assignment(None, "none")
    device_choice = by_device(reading, people, ble_settings)
    if device_choice is not None:
        return Assignment(device_choice, "device")
    weight = reading.values.get("weight_kg")
    if weight is not None:
        weight_choice = by_weight(weight, people, recent, tolerance_kg)
        if weight_choice is not None:
            return Assignment(weight_choice, "weight")
    return Assignment(None, "none")
