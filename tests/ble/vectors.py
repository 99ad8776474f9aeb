"""The reference vectors (shared/reference/ble-vectors.md), loaded once from vectors.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS: dict[str, Any] = json.loads((Path(__file__).parent / "vectors.json").read_text(encoding="utf-8"))


def by_id(section: str, vector_id: str) -> dict[str, Any]:
    return next(item for item in VECTORS[section] if item["id"] == vector_id)


def ids(section: str) -> list[str]:
    return [item["id"] for item in VECTORS[section]]
