"""The one module that imports garminconnect, an optional extra: sign-in, token refresh, the upload.

Garmin's sign-in changes under its users (reference cloud-and-formats.md §4.3: garth deprecated in
2026, python-garminconnect 0.3 signs in natively and refreshes its DI OAuth tokens itself), so it is
left to that library, kept behind these few functions: `sign_in` (with the MFA prompt) returns the
library's token state as a string, `upload` posts one FIT file with it and returns the state again
(the library refreshes an expiring token on its own). The library's own token file is never used: it
is handed its state as a string and never given a path, and the caller keeps the string (`tokens`).

Everything the library raises becomes a `GarminError` whose text is the sentence for the user: 401
(sign in again), 403 (Garmin refused: its import page takes the same files), 429 (try later). The
library's messages can quote what Garmin answered; none is shown without `masked`, and its logger is
silenced. The calls block (the library uses requests): the server runs them in a thread.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import interceptor

UPLOAD_PATH = "/upload-service/upload"
PROFILE_PATH = "/userprofile-service/socialProfile"
IMPORT_PAGE = "Garmin Connect's Import Data page (the web page's upload menu)"
MAX_DETAIL_CHARS = 160
# Anything that looks like a token (a long run of token characters) is cut out of a library message.
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9._~+/=-]{24,}")
_API_STATUS = re.compile(r"API Error (\d{3})")


class GarminError(Exception):
    """What went wrong, as the sentence a user reads. `retry`: the same upload may work later."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


class NotInstalled(GarminError):
    def __init__(self) -> None:
        super().__init__(f"Garmin Connect upload needs the optional `garmin` extra: run "
                         f"`.venv/bin/pip install -e '.[garmin]'` in {checkout()}", retry=True)


def checkout() -> Path:
    """The directory this interceptor was installed from (editable install), else the current one."""
    root = Path(interceptor.__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else Path.cwd()


def masked(text: str) -> str:
    """A library message fit to show: token-like runs cut out, one line, bounded."""
    cleaned = _TOKEN_LIKE.sub("…", " ".join(text.split()))
    return cleaned if len(cleaned) <= MAX_DETAIL_CHARS else cleaned[:MAX_DETAIL_CHARS] + "…"


def _load() -> tuple[ModuleType, ModuleType]:
    try:
        from garminconnect import client, exceptions
    except ImportError:
        raise NotInstalled() from None
    # Its log lines quote Garmin's answers (tickets among them) and its tracebacks: not ours to show.
    logging.getLogger("garminconnect").setLevel(logging.CRITICAL + 1)
    return client, exceptions


def available() -> bool:
    try:
        _load()
    except NotInstalled:
        return False
    return True


def relogin(person: str) -> str:
    return f"run `interceptor garmin login --user {person}`"


def sign_in(email: str, password: str, prompt_mfa: Callable[[], str], domain: str) -> tuple[str, str | None]:
    """Sign in (asking `prompt_mfa` for the code Garmin sent, if it wants one); the token state to keep,
    and the account's display name."""
    client, exceptions = _load()
    garmin = client.Client(domain=domain)
    try:
        garmin.login(email, password, prompt_mfa=prompt_mfa)
    except exceptions.GarminConnectAuthenticationError as error:
        if "MFA" in str(error):
            raise GarminError("Garmin did not accept the verification code: run the login again and type "
                              "the newest code Garmin sent", retry=False) from None
        raise GarminError("Garmin did not accept the e-mail and password (401): check them at "
                          f"https://connect.{domain} and run the login again", retry=False) from None
    except exceptions.GarminConnectTooManyRequestsError:
        raise GarminError("Garmin is rate limiting sign-ins from this address (429): try again in an hour; "
                          "each attempt restarts the wait", retry=True) from None
    except Exception as error:  # every sign-in way the library knows failed (Garmin changed something)
        raise GarminError(f"could not sign in to Garmin Connect ({masked(str(error))}); a newer garminconnect "
                          "release may know Garmin's current sign-in: `.venv/bin/pip install -U garminconnect`",
                          retry=True) from None
    name: str | None = None
    try:
        profile = garmin.connectapi(PROFILE_PATH)
        if isinstance(profile, dict) and isinstance(profile.get("displayName"), str):
            name = profile["displayName"]
    except Exception:  # the sign-in worked; a profile is only for the greeting
        name = None
    return str(garmin.dumps()), name


def upload(tokens: str, domain: str, person: str, filename: str, data: bytes, keep: Callable[[str], None]) -> None:
    """Post one FIT file to the person's account. The library refreshes an expiring token by itself:
    `keep` gets the new token state whenever it changed, even when the upload then failed."""
    client, exceptions = _load()
    garmin = client.Client(domain=domain)
    try:
        garmin.loads(tokens)
    except Exception:
        raise GarminError(f"the Garmin sign-in kept for {person} is unusable: {relogin(person)}") from None
    try:
        garmin.post("connectapi", UPLOAD_PATH, files={"file": (filename, data)}, api=True)
    except exceptions.GarminConnectConnectionError as error:
        raise _refused(person, str(error)) from None
    except exceptions.GarminConnectAuthenticationError:
        raise GarminError(f"Garmin no longer accepts {person}'s sign-in (401): {relogin(person)}") from None
    except exceptions.GarminConnectTooManyRequestsError:
        raise _rate_limited() from None
    except Exception as error:  # requests: no route, timeout, TLS
        raise GarminError(f"cannot reach Garmin Connect ({type(error).__name__}: {masked(str(error))}); "
                          "check the network and try again") from None
    finally:
        after = str(garmin.dumps())
        if after != tokens and garmin.is_authenticated:
            keep(after)


def _rate_limited() -> GarminError:
    return GarminError("Garmin is rate limiting this address (429): nothing more is sent now; try again later "
                       "(serve retries by itself)")


def _refused(person: str, text: str) -> GarminError:
    """The library's `API Error NNN - message` as a sentence, by status."""
    found = _API_STATUS.search(text)
    status = int(found.group(1)) if found else None
    if status == 401:
        return GarminError(f"Garmin no longer accepts {person}'s sign-in (401): {relogin(person)}")
    if status == 403:
        return GarminError("Garmin refused the upload (403): uploads from outside its apps are sometimes blocked; "
                           f"the same files upload by hand on {IMPORT_PAGE} (`interceptor export --format fit "
                           f"--user {person}` writes them)")
    if status == 429:
        return _rate_limited()
    if status is not None and 400 <= status < 500:
        return GarminError(f"Garmin refused the upload ({status}: {masked(text)})", retry=False)
    return GarminError(f"Garmin Connect failed ({masked(text)}); try again later")
