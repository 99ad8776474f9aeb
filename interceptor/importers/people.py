"""Who an imported row belongs to: the person its height or name points at, else the one named
with `--user`, else nobody (the row is skipped with the reason, never guessed).

Zepp Life writes every family member's weigh-ins into one file, told apart only by the height stored
with each row; a row maps to the household person of nearest height within `HEIGHT_TOLERANCE_CM`, if
exactly one is that near. SmartScaleConnect names the person; the name maps to a slug, a name or a
short name, ignoring case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from interceptor.config import Person
from interceptor.importers.records import Who

# Heights are entered by hand in the vendor's app, in whole centimetres, and may be a year old.
HEIGHT_TOLERANCE_CM = 2.0


@dataclass(frozen=True)
class Decision:
    slug: str | None
    reason: str = ""  # why nobody, when slug is None
    by_user_flag: bool = False  # the row named someone else (or nobody we know): `--user` placed it


class People:
    def __init__(self, people: Sequence[Person], fallback: str | None) -> None:
        self.people = list(people)
        self.fallback = fallback
        self._names = {key.lower(): person.slug for person in self.people
                       for key in (person.slug, person.name, person.short_name) if key}
        self._by_height: dict[float, Decision] = {}

    def _height(self, height_cm: float) -> Decision:
        near = [person for person in self.people if abs(person.height_cm - height_cm) <= HEIGHT_TOLERANCE_CM]
        if len(near) == 1:
            return Decision(near[0].slug)
        if self.fallback is not None:
            return Decision(self.fallback, by_user_flag=True)
        if len(self.people) == 1 and not near:
            return Decision(self.people[0].slug)
        if near:
            names = " and ".join(person.slug for person in near)
            return Decision(None, f"unknown person: height {height_cm:g} cm fits both {names}; pass --user PERSON")
        return Decision(None, f"unknown person: height {height_cm:g} cm matches nobody in the household;"
                              " pass --user PERSON or set height_cm")

    def decide(self, who: Who) -> Decision:
        if who.name is not None:
            slug = self._names.get(who.name.lower())
            if slug is not None:
                return Decision(slug)
            if self.fallback is not None:
                return Decision(self.fallback, by_user_flag=True)
            return Decision(None, f"unknown person: {who.name[:40]!r} is not in the household; pass --user PERSON")
        if who.height_cm is not None:
            decided = self._by_height.get(who.height_cm)
            if decided is None:
                decided = self._by_height[who.height_cm] = self._height(who.height_cm)
            return decided
        if self.fallback is not None:
            return Decision(self.fallback)
        if len(self.people) == 1:
            return Decision(self.people[0].slug)
        return Decision(None, "unknown person: the file does not say whose weigh-ins these are; pass --user PERSON")
