"""Who stood on the scale: the device's own user id when it maps to a configured person, else nobody.

The Withings scale echoes the `id` we sent in `sp.users` as `userid`; a person without a configured
`withings_user_id` gets one derived from their slug, stable across restarts and config reorderings,
so a household works without anyone looking up ids.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import UTC, date, datetime

from interceptor.config import Person
from interceptor.model import Reading


def age_in_years(birth: date, at: datetime) -> float:
    """Decimal age at a moment: what the scale shows as `agt` (21.3) and the formulas take as age."""
    born = datetime(birth.year, birth.month, birth.day, tzinfo=UTC)
    return (at - born).total_seconds() / (365.2425 * 86400)


def withings_user_id(person: Person) -> int:
    """The configured id, else an 8-digit id derived from the slug (real ids are 7–8 digits)."""
    if person.withings_user_id is not None:
        return person.withings_user_id
    return 10_000_000 + zlib.crc32(person.slug.encode("utf-8")) % 90_000_000


def assign_user(reading: Reading, people: Sequence[Person]) -> str | None:
    """The slug of the person the reading belongs to, or None (unassigned) when nothing says who."""
    if reading.device_user_id is None or reading.kind != "body":
        return None
    if reading.source == "withings":
        for person in people:
            if str(withings_user_id(person)) == reading.device_user_id:
                return person.slug
    return None
