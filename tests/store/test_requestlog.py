"""The request log: a bounded ring of raw requests, kept for debugging."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from interceptor.store.requestlog import RequestLog


def _add(log: RequestLog, index: int, body: bytes = b"action=get") -> None:
    log.add(received_at=datetime.now(UTC), peer="127.0.0.1", method="POST", path=f"/cgi-bin/{index}",
            http_status=200, status=0, outcome="ok", detail=None, body=body)


def test_keeps_only_the_newest_rows_and_caps_bodies(tmp_path: Path) -> None:
    log = RequestLog(tmp_path / "requests.sqlite", max_rows=5, max_body_bytes=8, batch_rows=3)
    for index in range(11):
        _add(log, index, b"0123456789abcdef")
    rows = log.recent()
    assert [row.path for row in rows] == [f"/cgi-bin/{index}" for index in range(6, 11)]
    assert rows[0].body == b"01234567" and rows[0].body_size == 16
    log.close()


async def test_rows_reach_the_file_shortly_after_a_request_and_on_close(tmp_path: Path) -> None:
    path = tmp_path / "requests.sqlite"
    log = RequestLog(path, flush_after=0.05)
    _add(log, 1)
    other = RequestLog(path)
    assert other.recent() == []
    await asyncio.sleep(0.2)
    assert [row.path for row in other.recent()] == ["/cgi-bin/1"]
    _add(log, 2)
    log.close()
    assert [row.path for row in other.recent()] == ["/cgi-bin/1", "/cgi-bin/2"]
    other.close()
