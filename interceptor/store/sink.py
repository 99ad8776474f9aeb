"""What the outbox's `Delivery` needs from a sink (InfluxDB, MQTT): send a batch, or say why not."""

from __future__ import annotations

from typing import Protocol

from interceptor.store.outbox import OutboxBatch


class SinkError(Exception):
    """A sink refused or could not take a batch. `retry`: sending the same items again can succeed (a
    down server, credentials the user will fix), or cannot (items the sink refuses to parse)."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


class Sender(Protocol):
    """Sends one outbox batch, in order; raises SinkError. `label` names the sink in log lines."""

    label: str

    async def send(self, batch: OutboxBatch) -> None: ...
