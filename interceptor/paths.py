"""Where Scale Interceptor keeps its files by default; no imports beyond the standard library, so the
BLE gateway can use it without loading the server's config models."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def default_data_dir() -> Path:
    """XDG data home: `$XDG_DATA_HOME/interceptor`, i.e. `~/.local/share/interceptor` by default."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "interceptor"


def private_dir(path: Path) -> Path:
    """Create `path` (and its parents) readable by this user only (0700), or make it so if it is this
    user's: the data directory and the capture directory hold weigh-ins, device identities and
    conversations. A directory someone else owns (set up by an administrator) is left as it is, and
    so is a sticky one: /tmp or /var/tmp given as the place for a file (root running
    `--data-dir /tmp`) is shared by every user and service on the machine, and closing it would break
    them all."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = path.stat()
    if status.st_mode & 0o077 and status.st_uid == os.getuid() and not status.st_mode & stat.S_ISVTX:
        path.chmod(0o700)
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty if missing, readable and writable by this user only (0600), or make it
    so; SQLite gives its -wal and -shm files the mode of the database file."""
    private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    status = path.stat()
    if status.st_mode & 0o077 and status.st_uid == os.getuid():
        path.chmod(0o600)
    return path
