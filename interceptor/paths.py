"""Where Scale Interceptor keeps its files by default; no imports beyond the standard library, so the
BLE gateway can use it without loading the server's config models."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    """XDG data home: `$XDG_DATA_HOME/interceptor`, i.e. `~/.local/share/interceptor` by default."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "interceptor"
