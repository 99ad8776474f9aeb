"""Shared by the capture tests: replaying files in-process and the measurements' comparable part."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

from interceptor.capture.replay import ConversationResult, Replayer, Summary, replay_files, target
from interceptor.config import Config

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"
HOUSEHOLD = CAPTURES / "household.toml"


def replay(paths: list[Path], config: Config, *,
           against: str | None = None) -> tuple[list[ConversationResult], Summary]:
    """The replay `interceptor replay` runs (in-process unless `against`), results collected."""
    results: list[ConversationResult] = []

    async def run() -> Summary:
        async with target(config, against=against, ingest=False, clock_mode="capture") as where:
            replayer = Replayer(where.host, where.port, clock=where.clock, watch=where.watch)
            return await replay_files(paths, replayer, on_result=results.append)

    return results, asyncio.run(run())


def comparable(measurement: dict[str, Any]) -> dict[str, Any]:
    """The part of a measurement the expected files state (the `measurements list --format json` shape)."""
    return {"kind": measurement["kind"], "taken_at": measurement["taken_at"],
            "device": measurement["device_id"], "user": measurement["user"], "readings": measurement["readings"]}


def mismatch(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> str | None:
    """Why `actual` is not `expected`: same count, order, kind, time, device, person, and every expected
    reading with its value (the server may add readings the capture implies, e.g. battery)."""
    if len(expected) != len(actual):
        return f"{len(actual)} measurement(s) instead of {len(expected)}: {actual}"
    for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
        for key in ("kind", "taken_at", "device", "user"):
            if want[key] != got[key]:
                return f"measurement {index}: {key} is {got[key]!r}, expected {want[key]!r}"
        for name, value in want["readings"].items():
            if name not in got["readings"] or not math.isclose(got["readings"][name], value, rel_tol=1e-9):
                return f"measurement {index}: {name} is {got['readings'].get(name)!r}, expected {value!r}"
    return None
