"""What goes to a person's Garmin Connect account, and the memory of what went, so nothing goes twice.

A weigh-in is sent as one `weight_scale` message in a FIT weight file (`exporters.fit`, at most 200 per
file). Garmin keeps every weight file it accepts: a weigh-in sent twice shows twice in Garmin
Connect, and no public description of the upload service says that a second file with the same
moment replaces the first (reference cloud-and-formats.md §4.3; the tools that sync into Garmin
delete the old weigh-in through another endpoint before sending a changed one). So a weigh-in is
sent once. A weigh-in that changed after it was sent (recomputed, recalibrated) is not sent again;
it is counted as `changed` for the user to hear about, and the journal keeps the new values.

"What was sent" is a digest of the weigh-in's message as the FIT file holds it (after the SDK's
scaling and rounding), so a recompute that moves nothing Garmin can see is no change. The upload is
recorded (durably) right after Garmin accepted the file; only a crash in between those two moments
could send a file again.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from interceptor.exporters import fit
from interceptor.garmin import library
from interceptor.garmin.tokens import TokenStore
from interceptor.model import Measurement
from interceptor.store import uploads
from interceptor.store.journal import Journal


def digest(message: dict[str, object]) -> str:
    """What Garmin would hold of one weigh-in: its message in a file of its own, encoded with a fixed
    creation time (so the same values give the same bytes)."""
    return hashlib.sha256(fit.encode([message], datetime.fromtimestamp(0, UTC))).hexdigest()[:32]


@dataclass(frozen=True)
class Outcome:
    sent: int  # weigh-ins in files Garmin accepted (or, dry, that would be sent)
    unchanged: int  # already there, as they are now
    changed: tuple[int, ...]  # already there, changed since: not sent again (ids)

    def __add__(self, other: Outcome) -> Outcome:
        return Outcome(self.sent + other.sent, self.unchanged + other.unchanged, self.changed + other.changed)


NOTHING = Outcome(0, 0, ())


class Uploader:
    """Sends one person's weigh-ins, a file (≤ 200) at a time, to the account they signed in with."""

    def __init__(self, journal: Journal, tokens: TokenStore, domain: str) -> None:
        self.journal = journal
        self.tokens = tokens
        self.person = tokens.person
        self.domain = domain
        self.files = 0

    async def send(self, measurements: Sequence[Measurement], *, dry_run: bool = False) -> Outcome:
        """Upload those of `measurements` (the person's, at most `fit.MAX_PER_FILE`) not sent before;
        raises `library.GarminError` when Garmin did not take them (nothing recorded then)."""
        assert len(measurements) <= fit.MAX_PER_FILE
        messages = {m.id: message for m in measurements if (message := fit.weight_scale(m)) is not None}
        digests = {identifier: digest(message) for identifier, message in messages.items()}
        person = self.person
        before = await self.journal.read(lambda reader: uploads.sent(reader.db, person, list(digests)))
        fresh = [identifier for identifier in digests if identifier not in before]
        changed = tuple(identifier for identifier, sent in before.items() if sent != digests[identifier])
        outcome = Outcome(len(fresh), len(before) - len(changed), changed)
        if not fresh:
            return outcome
        self.files += 1
        if dry_run:
            return outcome
        data = fit.encode([messages[identifier] for identifier in fresh], datetime.now(UTC))
        name = f"{person}-weight-{min(fresh)}.fit"
        await asyncio.to_thread(self._upload, name, data)
        sent = {identifier: digests[identifier] for identifier in fresh}
        await self.journal.write(lambda tx: uploads.record(tx.db, person, sent, time.time()))
        return outcome

    def _upload(self, name: str, data: bytes) -> None:
        """In a worker thread: the library blocks, and the token file is written when it changed."""
        signed_in = self.tokens.require()
        library.upload(signed_in.state, self.domain, self.person, name, data,
                       keep=lambda state: self.tokens.save(state, signed_in.display_name, signed_in.signed_in_at))
