"""Small JSON files that hold vendor sign-ins (tokens), readable by their owner only.

Written atomically (a temporary file in the same directory, fsynced, renamed over), created 0600,
in a data directory that is 0700: another account on the box cannot read a token, and a crash
never leaves half a file. Contents are never logged or echoed; errors name the file, not what is in it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from interceptor.importers.cloud.errors import CloudError
from interceptor.paths import private_dir

FILE_MODE = 0o600


class SecretFileError(CloudError):
    """The file exists but cannot be used; the message says what to do."""


def write_secret(path: Path, payload: dict[str, Any]) -> None:
    private_dir(path.parent)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(descriptor, FILE_MODE)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(payload, file, indent=2)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def read_secret(path: Path, fix: str) -> dict[str, Any] | None:
    """The stored object, None when there is no file; `fix` is what to tell the user when it is unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise SecretFileError(f"cannot read {path} ({type(error).__name__}): {fix}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise SecretFileError(f"{path} is not valid JSON: {fix}") from None
    if not isinstance(value, dict):
        raise SecretFileError(f"{path} does not hold a session: {fix}")
    return value


def remove_secret(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
