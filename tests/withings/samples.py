"""Loads the captured Withings samples (tests/fixtures/withings-samples, copied from the reference)."""

from __future__ import annotations

from pathlib import Path

SAMPLES = Path(__file__).parent.parent / "fixtures" / "withings-samples"
MARKER = "# ---- payload below this line"


def payload(name: str) -> bytes:
    """The exact bytes after the marker line; the `#` header lines name the source."""
    text = (SAMPLES / name).read_bytes()
    _, _, rest = text.partition(MARKER.encode())
    return rest.split(b"\n", 1)[1]


def first_line(name: str) -> bytes:
    return payload(name).split(b"\n", 1)[0].rstrip(b"\r")
