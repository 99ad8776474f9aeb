"""The sinks the config enables (InfluxDB, Home Assistant, one per Garmin Connect account), each with
the renderer its outbox items are queued with.

Every process that changes the journal (`serve`, `measurements assign`, `recompute`, `ble replay`)
opens it with these, so each change is queued for every configured sink in the same transaction.
"""

from __future__ import annotations

from interceptor.config import Config
from interceptor.store.outbox import Renderer


def configured_sinks(config: Config) -> dict[str, Renderer]:
    sinks: dict[str, Renderer] = {}
    if config.influx.enabled:
        from interceptor.store.delivery import INFLUX
        from interceptor.store.lineprotocol import LineProtocol

        sinks[INFLUX] = LineProtocol()
    if config.mqtt.enabled:
        from interceptor.homeassistant.states import SINK, StateRenderer

        sinks[SINK] = StateRenderer(config.mqtt.base_topic)
    if config.garmin.users:
        from interceptor.garmin.sink import GarminRenderer, sink_name

        sinks.update((sink_name(person), GarminRenderer(person)) for person in config.garmin.users)
    return sinks
