"""Home Assistant fixtures: a mosquitto of the test's own (killable, restartable on the same port),
an MQTT observer standing in for Home Assistant, and the household config with `[mqtt]`.

Home Assistant itself cannot run here; what it does with our messages is read from its documentation
(`ha_schema.py`) and its templates are rendered with Jinja2 as it renders them (`render`)."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tests.ble.conftest import MOSQUITTO
from tests.conftest import HOUSEHOLD_TOML, free_port, wait_for_port

BASE = "interceptor"
PREFIX = "homeassistant"


class Broker:
    """Debian's mosquitto on a loopback port of its own; `persistence` keeps retained messages in a
    file across restarts, as the Home Assistant Mosquitto add-on does."""

    def __init__(self, root: Path, *, persistence: bool = False, password_file: Path | None = None,
                 tls: tuple[Path, Path, Path] | None = None) -> None:
        self.root = root
        self.port = free_port()
        self.config = root / "mosquitto.conf"
        # `user root`: started as root, mosquitto would become user mosquitto and could not read the
        # password file and persistence directory in the test's private temporary directory.
        lines = [f"listener {self.port} 127.0.0.1", f"log_dest file {root / 'mosquitto.log'}", "user root"]
        if tls is not None:  # CA certificate, server certificate, server key
            lines += [f"cafile {tls[0]}", f"certfile {tls[1]}", f"keyfile {tls[2]}"]
        if password_file is None:
            lines.append("allow_anonymous true")
        else:
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        if persistence:
            lines += ["persistence true", f"persistence_location {root}/", "autosave_interval 1",
                      "autosave_on_changes true"]
        else:
            lines.append("persistence false")
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen([str(MOSQUITTO), "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.process)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=10)
        self.process = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if not MOSQUITTO.exists():
        pytest.fail("mosquitto is not installed: run ./scripts/setup.sh --test (it installs Debian's mosquitto)")
    root = tmp_path / "broker"
    root.mkdir()
    running = Broker(root)
    yield running
    running.stop()


def mqtt_toml(url: str, extra: str = "") -> str:
    return HOUSEHOLD_TOML.replace('model = "WS-50"', 'model = "WS-50"\nname = "Bathroom scale"') + (
        f'\n[mqtt]\nurl = "{url}"\n{extra}')


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Observer:
    """Subscribes to `topics` the way Home Assistant would (QoS 1) and records every message; it
    reconnects by itself when the broker comes back."""

    port: int
    topics: tuple[str, ...] = (f"{BASE}/#", f"{PREFIX}/#")
    ca_file: Path | None = None  # a TLS listener signed by this CA
    messages: list[Received] = field(default_factory=list)
    subscribed: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"observer-{id(self)}")
        self.client.on_connect = self._connected
        self.client.on_disconnect = lambda *_: self.subscribed.clear()
        self.client.on_message = self._message
        self.client.reconnect_delay_set(0.05, 0.2)
        if self.ca_file is not None:
            self.client.tls_set(ca_certs=str(self.ca_file))
        self.client.connect_async("127.0.0.1", self.port, keepalive=5)
        self.client.loop_start()

    def _connected(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe([(topic, 1) for topic in self.topics])
        self.subscribed.set()

    def _message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(Received(message.topic, message.payload, bool(message.retain), time.monotonic()))

    def on(self, topic: str, *, retained: bool | None = None) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if m.topic == topic and (retained is None or m.retain == retained)]

    def latest(self, topic: str) -> Any:
        found = self.on(topic)
        return found[-1].json() if found else None

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def retained(port: int, pattern: str = "#", settle_s: float = 0.5) -> dict[str, bytes]:
    """What the broker holds retained under `pattern` now, read by a fresh client."""
    observer = Observer(port, topics=(pattern,))
    try:
        assert observer.subscribed.wait(10), "could not subscribe to the broker"
        time.sleep(settle_s)
        with observer.lock:
            return {m.topic: m.payload for m in observer.messages if m.retain}
    finally:
        observer.close()


_TEMPLATES = ImmutableSandboxedEnvironment()


def render(template: str, payload: bytes | str, **variables: Any) -> str:
    """A value or command template rendered as Home Assistant renders it: `value` is the payload as
    text and `value_json` its JSON (templating docs, "Using value templates with MQTT")."""
    text = payload.decode() if isinstance(payload, bytes) else payload
    with contextlib.suppress(ValueError):
        variables.setdefault("value_json", json.loads(text))
    return _TEMPLATES.from_string(template).render(value=text, **variables)
