"""The MQTT shell inside `serve`: one connection to Home Assistant's broker, kept up, and the outbox
delivery that publishes through it.

On each connection, before anything is published, our own retained state documents are read back
(`states.held_of`), so a message the broker already holds is not published again; then the
availability (`online`, retained; the last will says `offline`), the discovery configs, the current
states the broker does not hold yet (`states.current_states`: a journal older than `[mqtt]`, a broker
that lost its retained messages), and the subscriptions to Home Assistant's birth message (configs
again, then states) and to the select's claims (which go through `Pipeline.assign`, as `measurements
assign` does). The outbox's states follow once all that is done. A broker that is down or refuses us is
reported once, in one line, and retried with a growing pause; weigh-ins wait in the outbox meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiomqtt
from aiohttp import web

from interceptor.config import Config
from interceptor.homeassistant.commands import ClaimError, excerpt, parse_claim
from interceptor.homeassistant.discovery import Discovery, gateways, scales
from interceptor.homeassistant.settings import MqttSettings
from interceptor.homeassistant.states import SINK, Held, current_states, held_of, journal_epoch
from interceptor.model import Measurement
from interceptor.pipeline import Pipeline
from interceptor.store import household
from interceptor.store.delivery import Delivery
from interceptor.store.measurements import GUEST
from interceptor.store.outbox import OutboxBatch

log = logging.getLogger(__name__)

QOS = 1
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
READBACK_TIMEOUT_S = 10.0  # reading our retained states back; a broker holds a few dozen of them
MAX_INCOMING = 1000  # messages queued from the broker before further ones are dropped
# A message the broker drops the connection over this many times in a row is skipped (logged):
# one bad message must not stop every later weigh-in from reaching Home Assistant.
MAX_TRIES_PER_MESSAGE = 3
BATCH_SIZE = 100
NOTE_WAITING_AFTER_S = 5.0  # a batch waiting this long for the broker has its reason noted on the outbox
CONNECTION_REFUSED = {4, 5, 134, 135}  # bad user name or password, not authorised (3.1.1 and 5 codes)


def tls_context(settings: MqttSettings) -> ssl.SSLContext | None:
    """For mqtts://: the system's CAs, or `ca_file`. Reads a file: call it off the event loop."""
    if not settings.tls:
        return None
    return ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)


async def client_for(settings: MqttSettings, *, will: aiomqtt.Will | None = None,
                     client_id: str | None = None) -> aiomqtt.Client:
    """A client for the configured broker, not yet connected."""
    password = settings.password.get_secret_value() if settings.password else None
    return aiomqtt.Client(
        settings.host, settings.port, username=settings.username, password=password,
        identifier=client_id or settings.client_id, keepalive=settings.keepalive_s,
        tls_context=await asyncio.to_thread(tls_context, settings), will=will,
        max_queued_incoming_messages=MAX_INCOMING, timeout=READBACK_TIMEOUT_S,
    )


class Disconnected(Exception):
    """The connection went while a message was on its way; it is sent again on the next one."""


def _refused(error: BaseException) -> bool:
    if isinstance(error, aiomqtt.MqttCodeError) and error.rc is not None:
        return getattr(error.rc, "value", error.rc) in CONNECTION_REFUSED
    return False


def explain(error: BaseException, where: str | None) -> str:
    """What went wrong connecting to the broker, and what to check; never the password."""
    if _refused(error):
        return f"the MQTT broker at {where} refused our credentials: check the user and password in [mqtt] url"
    reason = "the connection dropped" if isinstance(error, Disconnected) else str(error) or type(error).__name__
    return f"the MQTT broker at {where} is unreachable ({reason}): is it running, and is [mqtt] url right?"


async def probe(settings: MqttSettings) -> str | None:
    """Connect and disconnect (`interceptor doctor`): None when the broker lets us in, else why not."""
    try:
        async with asyncio.timeout(READBACK_TIMEOUT_S):
            async with await client_for(settings, client_id=f"{settings.client_id}-doctor"):
                return None
    except (aiomqtt.MqttError, OSError, TimeoutError) as error:
        return explain(error, settings.url)


class Link:
    """The connection, re-made whenever it goes; what the broker holds of ours; the configs published."""

    def __init__(self, config: Config, pipeline: Pipeline) -> None:
        self.settings = config.mqtt
        self.pipeline = pipeline
        self.discovery = Discovery(config)
        self.topics = self.discovery.topics
        self.where = self.settings.url
        self.retained: dict[str, Held] = {}  # our state topics → what the broker holds there
        self.handled = 0  # the seq of the last outbox item the sender is done with
        self.epoch: str | None = None  # the journal's, for the states published on connecting
        self.last_error: str | None = None
        self._client: aiomqtt.Client | None = None
        self._ready = asyncio.Event()
        self._lost: asyncio.Future[None] | None = None
        self._configs: dict[str, str] = {}  # discovery topic → payload published on this connection
        self._config_lock = asyncio.Lock()
        self._state_lock = asyncio.Lock()

    # -- for the sender -------------------------------------------------------------------------

    async def connected(self) -> None:
        await self._ready.wait()

    async def publish(self, topic: str, payload: str) -> None:
        """Retained, QoS 1, returns once the broker acknowledged; raises Disconnected if the
        connection goes first (the broker may or may not have it: the next read-back tells)."""
        if not self._ready.is_set():
            raise Disconnected
        await self._publish(topic, payload)

    async def _publish(self, topic: str, payload: str) -> None:
        client, lost = self._client, self._lost
        if client is None or lost is None or lost.done():
            raise Disconnected
        sending = asyncio.ensure_future(client.publish(topic, payload, qos=QOS, retain=True, timeout=float("inf")))
        done, _ = await asyncio.wait({sending, lost}, return_when=asyncio.FIRST_COMPLETED)
        if sending not in done:
            sending.cancel()
            raise Disconnected
        try:
            sending.result()
        except aiomqtt.MqttError:
            raise Disconnected from None

    async def publish_state(self, topic: str, document: str) -> None:
        """One of our state documents, as `publish`, unless the broker holds it or a newer one."""
        await self._put_state(topic, document, self.publish)

    async def _put_state(self, topic: str, document: str, send: Callable[[str, str], Awaitable[None]]) -> None:
        """Looking at what the broker holds and publishing are one step under a lock: the states of
        a (re)connection and the outbox's never overtake each other in between."""
        wanted = held_of(document)
        async with self._state_lock:
            held = self.retained.get(topic)
            if held is not None and wanted is not None and held.covers(wanted):
                return  # the same again would be a new weigh-in to Home Assistant (`force_update`)
            await send(topic, document)
            if wanted is not None:
                self.retained[topic] = wanted

    async def refresh_configs(self) -> None:
        """Publish the configs that changed since this connection published them (a new scale or
        gateway, a scale that started sending room readings or a new firmware)."""
        async with self._config_lock:
            found, relays = await self.pipeline.journal.read(
                lambda reader: (scales(reader, self.discovery), gateways(reader)))
            for topic, payload in self.discovery.all(found, relays):
                if self._configs.get(topic) != payload:
                    await self._publish(topic, payload)
                    self._configs[topic] = payload

    # -- the connection -------------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: connect, serve the connection, and after it goes, wait and connect again."""
        backoff = FIRST_BACKOFF_S
        while True:
            try:
                will = aiomqtt.Will(self.topics.availability, b"offline", qos=QOS, retain=True)
                async with await client_for(self.settings, will=will) as client:
                    backoff = FIRST_BACKOFF_S
                    await self._serve(client)
            except (aiomqtt.MqttError, Disconnected, OSError) as error:  # OSError: TLS, the CA file
                self._failed(error, backoff)
            except Exception as error:  # a bug or a journal failure must not end publishing for good
                if repr(error) != self.last_error:
                    self.last_error = repr(error)
                    log.exception("MQTT: the connection to %s failed unexpectedly; reconnecting", self.where)
            finally:
                self._down()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _failed(self, error: Exception, backoff: float) -> None:
        """One line per distinct problem, not one per retry."""
        if self._ready.is_set():
            message = f"lost the connection to the MQTT broker at {self.where} ({error}); reconnecting"
        else:
            message = f"{explain(error, self.where)} (weigh-ins are kept and published once it works)"
        if message == self.last_error:
            return
        self.last_error = message
        if _refused(error):
            log.error("%s", message)
        else:
            log.warning("%s (next try in %g s)", message, backoff)

    def _down(self) -> None:
        self._ready.clear()
        self._client = None
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    async def _serve(self, client: aiomqtt.Client) -> None:
        self._client, self._lost = client, asyncio.get_running_loop().create_future()
        self._configs = {}
        self.retained = await self._read_back(client)
        await client.subscribe([(self.topics.home_assistant_status, QOS), (self.topics.assign, QOS)])
        await self._publish(self.topics.availability, "online")
        await self.refresh_configs()  # before any state: Home Assistant sets entities up from them
        await self._restore_states()
        self._ready.set()
        log.info("publishing to Home Assistant through the MQTT broker at %s (discovery under %s/, states under %s/)",
                 self.where, self.settings.discovery_prefix, self.settings.base_topic)
        self.last_error = None
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            if message.topic.matches(self.topics.home_assistant_status):
                if payload == b"online":  # Home Assistant (re)started: it wants the configs again
                    self._configs = {}
                    await self.refresh_configs()
                    await self._restore_states()
            elif message.topic.matches(self.topics.assign):
                await self._claim(payload)

    async def _restore_states(self) -> None:
        """After the configs, as Home Assistant's discovery documentation asks: the broker must hold
        the current state of every person, scale and the unassigned weigh-ins, or Home Assistant
        (re)starting shows Unknown, and the select stays unavailable, until the next weigh-in. What
        the broker holds already is not published again; what the outbox owes is left to it."""
        journal = self.pipeline.journal
        if self.epoch is None:
            self.epoch = await journal.write(journal_epoch, durable=False)
        people = [person.slug for person in self.discovery.config.users]
        epoch, handled = self.epoch, self.handled
        states = await journal.read(lambda reader: current_states(reader, self.topics, people, epoch, handled))
        for topic, document in states:
            await self._put_state(topic, document, self._publish)

    async def _read_back(self, client: aiomqtt.Client) -> dict[str, Held]:
        """What the broker holds on our state topics. Retained messages come right after the
        subscription; a marker published on the same pattern afterwards comes after them."""
        held: dict[str, Held] = {}
        marker = self.topics.marker(secrets.token_hex(8))
        await client.subscribe(self.topics.states, qos=QOS)
        await client.publish(marker, b"sync", qos=QOS)
        try:
            async with asyncio.timeout(READBACK_TIMEOUT_S):
                async for message in client.messages:
                    topic = message.topic.value
                    if topic == marker:
                        break
                    payload = message.payload
                    if message.retain and isinstance(payload, bytes) and (document := held_of(payload)) is not None:
                        held[topic] = document
        except TimeoutError:
            log.warning("MQTT broker at %s: our retained states were not all read back within %g s; some may be "
                        "published again", self.where, READBACK_TIMEOUT_S)
        await client.unsubscribe(self.topics.states)
        return held

    async def _claim(self, payload: bytes) -> None:
        """A person chosen in Home Assistant for an unassigned weigh-in; refused ones are logged."""
        journal = self.pipeline.journal
        try:
            claim = parse_claim(payload, self.discovery.labels)
            target = claim.measurement_id
            if target is None:
                latest = await journal.read(lambda reader: next(iter(household.unclaimed(reader, limit=1)), None))
                if latest is None:
                    raise ClaimError("there is no unassigned weigh-in to assign")
                target = latest.id
            await self.pipeline.assign(target, claim.person, guest=claim.person is None, check=_waiting)
        except (ClaimError, LookupError) as error:
            log.warning("Home Assistant asked to assign a weigh-in: %s (payload %s)",
                        error.args[0] if error.args else error, excerpt(payload))
            return
        except Exception:  # the journal failed: the claim is lost, the connection is not
            log.exception("Home Assistant asked to assign a weigh-in; it could not be stored (payload %s)",
                          excerpt(payload))
            return
        log.info("measurement %d assigned to %s from Home Assistant", target, claim.person or "a guest")

    async def close(self) -> None:
        """Say `offline` ourselves (the will is only for when we vanish)."""
        if self._ready.is_set():
            with contextlib.suppress(Disconnected, TimeoutError):
                async with asyncio.timeout(2):
                    await self.publish(self.topics.availability, "offline")


def _waiting(stored: Measurement) -> None:
    """In the claim's own transaction: only a weigh-in still waiting for a person is claimed, so two
    claims at the same moment (Home Assistant, the household page) cannot both win."""
    if stored.user is not None:
        raise ClaimError(f"measurement {stored.id} is already assigned to {stored.user} "
                         f"(`interceptor measurements assign {stored.id} PERSON` moves it)")
    if stored.assignment == GUEST:
        raise ClaimError(f"measurement {stored.id} was marked as a guest's (the household page undoes that)")


class MqttSender:
    """`store.sink.Sender` for the MQTT sink: publishes each item's messages in order, each unless
    the broker already holds it (or something newer) on its topic. Waits for the broker rather than
    failing: a weigh-in made while it is down is published as soon as it is back. Tells the link
    which items it is done with: the states of a reconnection leave the others' topics to it."""

    label = "MQTT"

    def __init__(self, link: Link) -> None:
        self.link = link

    async def send(self, batch: OutboxBatch) -> None:
        try:
            await asyncio.wait_for(self.link.connected(), NOTE_WAITING_AFTER_S)
        except TimeoutError:  # say why on the outbox (the health page, doctor), then keep waiting
            reason = self.link.last_error or f"not connected to the MQTT broker at {self.link.where} yet"
            await self.link.pipeline.journal.write(
                lambda tx: tx.outbox_failed(batch, reason, time.time()), durable=False)
        await self._until_sent(self.link.refresh_configs)
        for payload in batch.payloads:
            item: dict[str, Any] = json.loads(payload)
            for topic, document in item["messages"]:
                await self._message(topic, document)
            self.link.handled = max(self.link.handled, item["seq"])

    async def _message(self, topic: str, document: str) -> None:
        """Skipped when the broker has it: published before a crash or a lost acknowledgement."""
        link = self.link
        for _ in range(MAX_TRIES_PER_MESSAGE):
            if await self._until_sent(lambda: link.publish_state(topic, document)):
                return
        log.error("the MQTT broker at %s dropped the connection %d times over the message for %s (%d bytes); "
                  "skipped it (the journal keeps the weigh-in)", link.where, MAX_TRIES_PER_MESSAGE, topic,
                  len(document))

    async def _until_sent(self, send: Callable[[], Any]) -> bool:
        """Wait for a connection and send; False when the connection went during the send."""
        await self.link.connected()
        try:
            await send()
        except Disconnected:
            return False
        return True


def homeassistant_context(config: Config, pipeline: Pipeline) -> Callable[[web.Application], AsyncIterator[None]]:
    """Runs the connection and the MQTT outbox for as long as the application runs."""

    async def context(_: web.Application) -> AsyncIterator[None]:
        link = Link(config, pipeline)
        delivery = Delivery(pipeline.journal, MqttSender(link), sink=SINK, batch_size=BATCH_SIZE)
        pipeline.journal.on_queued(delivery.wake)
        tasks = [asyncio.create_task(link.run(), name="mqtt-link"),
                 asyncio.create_task(delivery.run(), name="mqtt-delivery")]
        yield
        tasks[1].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tasks[1]
        await link.close()
        tasks[0].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tasks[0]

    return context
