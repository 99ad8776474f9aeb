"""Home Assistant over MQTT: the delay from a scale's `status 0` to the weigh-in's state on the broker.

`interceptor serve` with `[mqtt]` takes a steady stream of weigh-ins from a simulated scale (two
people, alternating); a subscriber on the same mosquitto (Debian's, on loopback) notes when each
person's state document arrives. A weigh-in's delay is that moment minus the moment the scale got
`status 0` for it; both are read from one clock in this process. Floor: p99 <= 1 s.

Baseline, measured in the same run against the same broker: a bare round trip, a client publishing
a retained QoS 1 message of the same size to a subscriber (the least any MQTT publisher can take),
at the same rate. The ratio says what the journal, the outbox and the rendering add.

Loopback only; every loop is bounded.

    .venv/bin/python bench/mqtt_delay.py [--rate 10] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from interceptor.config import load_config  # noqa: E402
from interceptor.users import withings_user_id  # noqa: E402
from interceptor.withings import scale  # noqa: E402
from tests.conftest import HOUSEHOLD_TOML, free_port, start_server, wait_for_port  # noqa: E402

MOSQUITTO = "/usr/sbin/mosquitto"
STATES = "interceptor/person/+/state"


class Arrivals:
    """A subscriber that notes when each message arrives, keyed by what `key` reads from it."""

    def __init__(self, port: int, topic: str, key) -> None:  # type: ignore[no-untyped-def]
        self.seen: dict[object, float] = {}
        self.key = key
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda client, *_: (client.subscribe(topic, qos=1), self.ready.set())
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(10)
        time.sleep(0.2)  # the SUBACK

    def _message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        if not message.retain:
            self.seen.setdefault(self.key(message.payload), time.monotonic())

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def taken_at(payload: bytes) -> int:
    moment = json.loads(payload)["last_measurement_time"]
    return int(datetime.fromisoformat(moment).timestamp())


async def weigh_in(port: int, userid: int, meastime: int, weight_g: int) -> float:
    """One whole conversation; returns the moment the scale read `status 0` for its measure."""
    identity = scale.ScaleIdentity()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def exchange(path: str, body: bytes) -> scale.RawResponse:
        writer.write(scale.request_bytes(path, body))
        await writer.drain()
        return await scale.read_response(reader)

    try:
        await exchange("/cgi-bin/once", scale.once_body())
        session = (await exchange("/cgi-bin/session", scale.session_new_body(identity))).json()["body"]["sessionid"]
        body = scale.wbs01_store_body(identity, session, userid, meastime, weight_g)
        reply = await exchange("/cgi-bin/measure", body)
        acked = time.monotonic()
        assert reply.json()["status"] == 0
        await exchange("/cgi-bin/session", scale.session_delete_body(session))
    finally:
        writer.close()
    return acked


def ours(port: int, broker_port: int, people: list[int], rate: float, seconds: float) -> list[float]:
    arrivals = Arrivals(broker_port, STATES, taken_at)
    acked: dict[int, float] = {}
    total = int(rate * seconds)
    first = int(time.time()) - 10 * total

    async def load() -> None:
        for index in range(total):
            started = time.monotonic()
            acked[first + index] = await weigh_in(port, people[index % 2], first + index, 70000 + index)
            await asyncio.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))

    try:
        asyncio.run(load())
        deadline = time.monotonic() + 30
        while len(arrivals.seen) < total and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        arrivals.close()
    missing = sorted(set(acked) - set(arrivals.seen))
    if missing:
        raise RuntimeError(f"{len(missing)} weigh-in(s) never reached the broker, e.g. meastime {missing[0]}")
    return [arrivals.seen[meastime] - moment for meastime, moment in acked.items()]


def bare(broker_port: int, size: int, rate: float, seconds: float) -> list[float]:
    arrivals = Arrivals(broker_port, "bench/bare/+", lambda payload: int(payload[:12]))
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    publisher.connect("127.0.0.1", broker_port)
    publisher.loop_start()
    sent: dict[int, float] = {}
    try:
        for index in range(int(rate * seconds)):
            started = time.monotonic()
            payload = f"{index:012d}".encode() + b"x" * max(0, size - 12)
            sent[index] = time.monotonic()
            publisher.publish(f"bench/bare/{index % 2}", payload, qos=1, retain=True).wait_for_publish(10)
            time.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))
        deadline = time.monotonic() + 10
        while len(arrivals.seen) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        arrivals.close()
    return [arrivals.seen[index] - moment for index, moment in sent.items()]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=10.0, help="weigh-ins per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch_text:
        scratch = Path(scratch_text)
        broker_port = free_port()
        (scratch / "mosquitto.conf").write_text(
            f"listener {broker_port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n")
        broker = subprocess.Popen([MOSQUITTO, "-c", str(scratch / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.STDOUT)
        try:
            wait_for_port(broker_port, broker)
            config = scratch / "interceptor.toml"
            config.write_text(HOUSEHOLD_TOML + f'\n[mqtt]\nurl = "mqtt://127.0.0.1:{broker_port}"\n')
            people = [withings_user_id(person) for person in load_config(config, environ={}).users]
            served = start_server(config, scratch / "data")
            try:
                time.sleep(1.0)  # connected, configs published
                delays = ours(served.port, broker_port, people, arguments.rate, arguments.seconds)
            finally:
                served.kill()
            size = 1900  # a person's state document is about this long
            baseline = bare(broker_port, size, arguments.rate, arguments.seconds)
        finally:
            broker.terminate()
            broker.wait(timeout=10)
    p99, bare_p99 = percentile(delays, 0.99), percentile(baseline, 0.99)
    print(f"status 0 -> state on the broker: {len(delays)} weigh-ins at {arguments.rate:g}/s, "
          f"p50 {statistics.median(delays) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {max(delays) * 1000:.1f} ms "
          f"(floor p99 1 s: {'ok' if p99 <= 1 else 'MISSED'})")
    print(f"bare publish -> subscriber, retained QoS 1, {size} bytes: p50 {statistics.median(baseline) * 1000:.2f} ms, "
          f"p99 {bare_p99 * 1000:.2f} ms; ratio p99 ours/bare {p99 / bare_p99:.1f}")


if __name__ == "__main__":
    main()
