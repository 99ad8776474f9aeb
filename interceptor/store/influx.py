"""The two ways to talk to InfluxDB: v1 (`/write` + InfluxQL) and v2 (the `influxdb-client` async API).

Both turn every failure into a `SinkError` whose message tells a user what is wrong and what to do;
`retry` says whether sending the same points again can succeed (a down server, a wrong token that
the user will fix) or not (points InfluxDB refuses to parse, which no retry will change).
Secrets never appear in a message, which the log, `doctor`, `sync influx` and the outbox's
`last_error` all show: the URL is shown with its password masked, and what the server said is cut to
a few hundred characters and scrubbed of the configured secrets and anything token-like (a server
that echoes the request's Authorization header once leaked the v2 token this way).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Protocol

import aiohttp

from interceptor.config import InfluxSettings
from interceptor.masking import scrub
from interceptor.notices import excerpt
from interceptor.store.outbox import OutboxBatch
from interceptor.store.sink import SinkError


class InfluxWriter(Protocol):
    async def write(self, lines: list[str]) -> None: ...

    async def retract(self, measurement: str, tags: dict[str, str], timestamp_s: int) -> None: ...

    async def probe(self) -> None: ...

    async def check_write(self) -> None:
        """An empty write: InfluxDB checks the credentials and the database (or bucket) and stores nothing."""

    async def close(self) -> None: ...


def _quote_identifier(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _quote_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# Characters of what InfluxDB said that a message quotes.
DETAIL_CHARS = 300


def said(settings: InfluxSettings, text: str) -> str:
    """What a server (or a client library) said, fit for a message: scrubbed of secrets, cut, escaped."""
    return excerpt(scrub(text.strip(), settings.secret_values()), DETAIL_CHARS)


def _unreachable(settings: InfluxSettings, error: BaseException) -> SinkError:
    timed_out = isinstance(error, asyncio.TimeoutError | TimeoutError)
    reason = "timed out" if timed_out else said(settings, str(error)) or type(error).__name__
    return SinkError(f"InfluxDB at {settings.shown_url} is unreachable ({reason}): is it running, and is [influx]"
                     " url right?")


class V1Writer:
    """InfluxDB 1.x: line protocol to `/write`, InfluxQL to `/query` (also what 2.x/3.x accept for v1 clients)."""

    def __init__(self, settings: InfluxSettings) -> None:
        assert settings.url is not None
        self.settings = settings
        self.url = settings.url
        self.shown_url = settings.shown_url
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            auth = None
            if self.settings.username is not None:
                password = self.settings.password.get_secret_value() if self.settings.password else ""
                auth = aiohttp.BasicAuth(self.settings.username, password)
            self._session = aiohttp.ClientSession(
                auth=auth, timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _explain(self, status: int, body: str) -> SinkError:
        try:
            detail = json.loads(body).get("error", body)
        except (ValueError, AttributeError):
            detail = body
        detail = said(self.settings, str(detail))
        database = self.settings.database
        if status in (401, 403):
            return SinkError(f"InfluxDB at {self.shown_url} refused the credentials ({detail}): check [influx]"
                             " username and password")
        if status == 404 or "database not found" in detail:
            return SinkError(f"InfluxDB at {self.shown_url} has no database '{database}': create it with"
                             f" `influx -execute 'CREATE DATABASE {database}'` or fix [influx] database")
        if status == 400:
            return SinkError(f"InfluxDB refused points: {detail}", retry=False)
        return SinkError(f"InfluxDB at {self.shown_url} answered HTTP {status}: {detail}")

    async def query(self, statement: str, *, database: bool = True) -> dict:
        parameters = {"q": statement, "epoch": "s"}
        if database:
            parameters["db"] = self.settings.database
        try:
            async with self._client().post(f"{self.url}/query", data=parameters) as response:
                body = await response.text()
                if response.status != 200:
                    raise self._explain(response.status, body)
        except (TimeoutError, aiohttp.ClientError) as error:
            raise _unreachable(self.settings, error) from None
        result = json.loads(body)
        errors = [item["error"] for item in result.get("results", []) if "error" in item]
        if errors:
            raise self._explain(400 if "not found" not in errors[0] else 404, json.dumps({"error": errors[0]}))
        return result

    async def write(self, lines: list[str]) -> None:
        parameters = {"db": self.settings.database, "precision": "s"}
        if self.settings.retention_policy:
            parameters["rp"] = self.settings.retention_policy
        try:
            async with self._client().post(
                f"{self.url}/write", params=parameters, data="\n".join(lines).encode("utf-8")
            ) as response:
                if response.status != 204:
                    raise self._explain(response.status, await response.text())
        except (TimeoutError, aiohttp.ClientError) as error:
            raise _unreachable(self.settings, error) from None

    async def check_write(self) -> None:
        await self.write([])  # an empty body: 204 from 1.x when the database exists and we may write

    async def retract(self, measurement: str, tags: dict[str, str], timestamp_s: int) -> None:
        conditions = " AND ".join(
            f"{_quote_identifier(key)} = {_quote_string(value)}" for key, value in sorted(tags.items())
        )
        moment = datetime.fromtimestamp(timestamp_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        await self.query(f"DELETE FROM {_quote_identifier(measurement)} WHERE {conditions} AND time = '{moment}'")

    async def probe(self) -> None:
        """Reachable, credentials accepted, database present (created when we are allowed to)."""
        result = await self.query("SHOW DATABASES", database=False)
        series = result["results"][0].get("series", [])
        names = {row[0] for item in series for row in item.get("values", [])}
        if self.settings.database not in names:
            try:
                await self.query(f"CREATE DATABASE {_quote_identifier(self.settings.database)}", database=False)
            except SinkError:
                raise self._explain(404, "database not found") from None


class V2Writer:
    """InfluxDB 2.x, 3.x and 1.8+ through the official `influxdb-client` async API."""

    def __init__(self, settings: InfluxSettings) -> None:
        from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

        assert settings.url is not None and settings.token is not None
        self.settings = settings
        self.shown_url = settings.shown_url
        self._client = InfluxDBClientAsync(
            url=settings.url, token=settings.token.get_secret_value(), org=settings.org,
            timeout=int(settings.timeout_s * 1000),
        )

    async def close(self) -> None:
        await self._client.close()

    def _explain(self, error: Exception) -> SinkError:
        from influxdb_client.rest import ApiException

        if isinstance(error, ApiException):
            try:
                detail = json.loads(error.body or "{}").get("message", error.reason)
            except (ValueError, AttributeError):
                detail = error.reason
            detail = said(self.settings, str(detail))
            if error.status in (401, 403):
                return SinkError(f"InfluxDB at {self.shown_url} refused the token ({detail}): check [influx] token")
            if error.status == 404:
                return SinkError(f"InfluxDB at {self.shown_url} has no bucket '{self.settings.bucket}' in org"
                                 f" '{self.settings.org}' ({detail}): create it or fix [influx] bucket and org")
            if error.status == 400:
                return SinkError(f"InfluxDB refused points: {detail}", retry=False)
            return SinkError(f"InfluxDB at {self.shown_url} answered HTTP {error.status}: {detail}")
        return _unreachable(self.settings, error)

    async def write(self, lines: list[str]) -> None:
        from influxdb_client import WritePrecision

        try:
            await self._client.write_api().write(
                bucket=self.settings.bucket, org=self.settings.org, record=lines, write_precision=WritePrecision.S
            )
        except Exception as error:  # the client raises ApiException, aiohttp and timeout errors
            raise self._explain(error) from None

    async def check_write(self) -> None:
        await self.write([""])  # one empty line, so the client sends an empty body (204 from InfluxDB 2.1 on)

    async def retract(self, measurement: str, tags: dict[str, str], timestamp_s: int) -> None:
        moment = datetime.fromtimestamp(timestamp_s, UTC)
        predicate = " AND ".join([f'_measurement="{measurement}"',
                                  *(f'{key}="{value}"' for key, value in sorted(tags.items()))])
        try:
            await self._client.delete_api().delete(
                moment, moment + timedelta(seconds=1), predicate, bucket=self.settings.bucket, org=self.settings.org
            )
        except Exception as error:
            raise self._explain(error) from None

    async def probe(self) -> None:
        try:
            alive = await self._client.ping()
        except Exception as error:
            raise self._explain(error) from None
        if not alive:
            raise SinkError(f"InfluxDB at {self.shown_url} does not answer its /ping: is [influx] url right?")


class InfluxSender:
    """The outbox's view of InfluxDB: a batch's retractions (points a re-assigned weigh-in leaves
    behind), then its lines."""

    label = "InfluxDB"

    def __init__(self, writer: InfluxWriter) -> None:
        self.writer = writer

    async def send(self, batch: OutboxBatch) -> None:
        for retract in batch.retracts:
            tags = {key: value for key, value in retract.items() if not key.startswith("_")}
            await self.writer.retract(retract.get("_measurement", "body"), tags, int(retract["_time"]))
        if batch.payloads:
            await self.writer.write(batch.payloads)


def make_writer(settings: InfluxSettings) -> InfluxWriter:
    return V2Writer(settings) if settings.dialect == "v2" else V1Writer(settings)
