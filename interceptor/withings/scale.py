"""A stand-in for a Withings Wi-Fi scale, which cannot run here: it speaks the scale's side of the
conversation over a raw TCP socket, byte for byte, so tests and benchmarks see the real framing
(Content-Length versus chunked, keep-alive, connection close) that an HTTP client library would hide.

The request bodies follow the captured samples in `shared/reference/withings-samples/`: field order
from the WBS01 firmware strings, values from the 2010/2013 captures (reference §1.3, §1.4).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from urllib.parse import quote_plus

USER_AGENT = "Withings UserAgent"  # what the emulator scripts sent (reference §3)


@dataclass
class RawResponse:
    """One HTTP response as it came off the wire."""

    version: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    chunks: list[int] = field(default_factory=list)  # chunk sizes when chunked, in order

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    @property
    def chunked(self) -> bool:
        return (self.header("Transfer-Encoding") or "").lower() == "chunked"

    def json(self) -> dict:
        return json.loads(self.body)


def request_bytes(path: str, body: bytes, *, host: str = "scalews.withings.net", http10: bool = False) -> bytes:
    version = "HTTP/1.0" if http10 else "HTTP/1.1"
    head = (
        f"POST {path} {version}\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
    )
    if not http10:
        head += "Connection: keep-alive\r\n"
    return (head + "\r\n").encode("ascii") + body


async def read_response(reader: asyncio.StreamReader) -> RawResponse:
    """Parse one response: Content-Length, chunked, or (HTTP/1.0 style) until the server closes.
    The head is read in one call, so the stand-in costs little CPU next to the server it measures."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *lines = head[:-4].split("\r\n")
    version, status, _ = status_line.split(" ", 2)
    headers = []
    for line in lines:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    response = RawResponse(version, int(status), headers, b"")
    if response.chunked:
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            response.chunks.append(size)
            body += (await reader.readexactly(size + 2))[:-2]
        response.body = bytes(body)
    elif (length := response.header("Content-Length")) is not None:
        response.body = await reader.readexactly(int(length))
    else:
        response.body = await reader.read()
    return response


@dataclass(frozen=True)
class ScaleIdentity:
    mac: str = "00:24:e4:06:59:dc"
    mfgid: int = 262151
    firmware: int = 200
    battery_pct: int = 69


def once_body() -> bytes:
    return b"action=get"


def session_new_body(scale: ScaleIdentity) -> bytes:
    # hash is md5(mac:secret:once) on a real scale; no local server can check it (reference §1.3).
    return (
        f"action=new&auth={scale.mac}&hash=0123456789abcdef0123456789abcdef&mfgid={scale.mfgid}"
        f"&currentfw={scale.firmware}&batterylvl={scale.battery_pct}&duration=30&zreboot=1"
    ).encode("ascii")


def wbs01_store_body(scale: ScaleIdentity, sessionid: str, userid: int, meastime: int, weight_g: int) -> bytes:
    measures = json.dumps({"measures": [{"value": weight_g, "type": 1, "unit": -3}]}, separators=(",", ":"))
    return (
        f"action=store&sessionid={sessionid}&macaddress={scale.mac}&userid={userid}&meastime={meastime}"
        f"&devtype=1&attribstatus=0&measures={quote_plus(measures)}"
    ).encode("ascii")


def ws50_store_body(scale: ScaleIdentity, sessionid: str, userid: int, groups: list[dict]) -> bytes:
    document = json.dumps({"measuregrps": groups}, separators=(",", ":"))
    return (
        f"action=store&sessionid={sessionid}&macaddress={scale.mac}&userid={userid}"
        f"&measuregrps={quote_plus(document)}"
    ).encode("ascii")


def session_delete_body(sessionid: str) -> bytes:
    return f"action=delete&sessionid={sessionid}".encode("ascii")


@dataclass
class Conversation:
    """The exchanges of one scale connection, in order: (path, request body, response)."""

    exchanges: list[tuple[str, bytes, RawResponse]] = field(default_factory=list)

    def response(self, index: int) -> RawResponse:
        return self.exchanges[index][2]


async def weigh_in(
    host: str,
    port: int,
    *,
    scale: ScaleIdentity | None = None,
    userid: int | None = None,
    meastime: int,
    weight_g: int,
    source: str | None = None,
) -> Conversation:
    """The whole WBS01 conversation on one kept-alive connection: once, session new, measure store,
    session delete (reference §1.1). The user id defaults to the first user the server offered;
    `source` is the address the scale talks from (a 127.x.y.z of its own, in tests)."""
    scale = scale or ScaleIdentity()
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0) if source else None)
    conversation = Conversation()

    async def exchange(path: str, body: bytes) -> RawResponse:
        writer.write(request_bytes(path, body))
        await writer.drain()
        response = await read_response(reader)
        conversation.exchanges.append((path, body, response))
        return response

    try:
        await exchange("/cgi-bin/once", once_body())
        session = (await exchange("/cgi-bin/session", session_new_body(scale))).json()["body"]
        sessionid = session["sessionid"]
        if userid is None:
            users = session["sp"]["users"]
            userid = users[0]["id"] if users else 0
        await exchange("/cgi-bin/measure", wbs01_store_body(scale, sessionid, userid, meastime, weight_g))
        await exchange("/cgi-bin/session", session_delete_body(sessionid))
    finally:
        writer.close()
        await writer.wait_closed()
    return conversation
