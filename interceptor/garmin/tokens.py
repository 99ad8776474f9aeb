"""Each person's Garmin sign-in, kept between commands: `<data_dir>/garmin/<person>.json`, mode 0600.

What is kept is the library's token state (its access and refresh tokens) as the library wrote it,
so that `upload` can hand it back; the library's own default file (`~/.garminconnect`) is never
written. The directory is 0700, the file 0600 and written atomically (`cloud.secretfile`). Nothing
here logs or prints what the file holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from interceptor.garmin.library import GarminError, relogin
from interceptor.importers.cloud.errors import CloudError
from interceptor.importers.cloud.secretfile import read_secret, remove_secret, write_secret

DIRECTORY = "garmin"
FORMAT = 1


@dataclass(frozen=True)
class SignIn:
    person: str
    state: str = field(repr=False)  # the library's tokens
    display_name: str | None
    signed_in_at: float


class TokenStore:
    def __init__(self, data_dir: Path, person: str) -> None:
        self.person = person
        self.path = data_dir / DIRECTORY / f"{person}.json"

    def load(self) -> SignIn | None:
        try:
            value = read_secret(self.path, relogin(self.person))
        except CloudError as error:
            raise GarminError(str(error)) from None
        if value is None:
            return None
        state = value.get("state")
        if value.get("format") != FORMAT or not isinstance(state, str):
            raise GarminError(f"{self.path} is not a Garmin sign-in this version reads: {relogin(self.person)}")
        name = value.get("display_name")
        return SignIn(self.person, state, name if isinstance(name, str) else None,
                      float(value.get("signed_in_at") or 0.0))

    def require(self) -> SignIn:
        signed_in = self.load()
        if signed_in is None:
            raise GarminError(f"{self.person} is not signed in to Garmin Connect on this box: {relogin(self.person)}")
        return signed_in

    def save(self, state: str, display_name: str | None, signed_in_at: float | None = None) -> None:
        write_secret(self.path, {"format": FORMAT, "person": self.person, "display_name": display_name,
                                 "signed_in_at": signed_in_at or time.time(), "state": state})

    def remove(self) -> bool:
        return remove_secret(self.path)
