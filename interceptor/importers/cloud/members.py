"""Who a cloud record belongs to, and the reading it becomes.

A record names a member of the vendor app's family (Xiaomi Home `user.name`, a Zepp family member's
nickname) or is the account owner's own. The household person is, in order: the `[xiaomi] members`
entry for that name; the person whose slug, name or short name it is (case ignored, as export files
are matched: importers/people.py); for the owner's records, `[xiaomi] owner`. Otherwise nobody is
named and the pipeline decides as for a live weigh-in (by recent weight, or later by hand).
"""

from __future__ import annotations

from datetime import datetime

from interceptor.config import Config
from interceptor.importers.cloud.errors import CloudError
from interceptor.importers.cloud.records import CloudRecord
from interceptor.importers.people import People
from interceptor.importers.records import Who
from interceptor.model import Reading
from interceptor.pipeline import Imported


def check_members(config: Config) -> None:
    """Every slug the `[xiaomi]` section names is in the household (one sentence if not)."""
    known = {person.slug for person in config.users}
    named = [("members", f"{name!r} = {slug!r}", slug) for name, slug in config.xiaomi.members.items()]
    if config.xiaomi.owner:
        named.append(("owner", repr(config.xiaomi.owner), config.xiaomi.owner))
    for key, shown, slug in named:
        if slug not in known:
            people = ", ".join(sorted(known)) or "none configured"
            raise CloudError(f"[xiaomi] {key}: {shown} is not a person of the household ({people}); fix the config")


class Members:
    def __init__(self, config: Config) -> None:
        self.table = config.xiaomi.members
        self.owner = config.xiaomi.owner
        self.people = People(config.users, None)

    def person_for(self, record: CloudRecord) -> str | None:
        if record.member is not None:
            if record.member in self.table:
                return self.table[record.member]
            return self.people.decide(Who(name=record.member)).slug
        return self.owner if record.owner else None


def imported(record: CloudRecord, *, source: str, device_id: str, device_model: str | None, user: str | None,
             received_at: datetime, origin: str) -> Imported:
    reading = Reading(source=source, device_id=device_id, device_model=device_model, taken_at=record.taken_at,
                      received_at=received_at, values=record.values, vendor_metrics=record.vendor_metrics,
                      raw=record.raw)
    return Imported(reading, user, origin)
