"""A stand-in for Garmin's sign-in, token and upload servers, which cannot run here (no test may talk to
Garmin), reached by the real garminconnect library through a loopback HTTPS proxy.

The library names Garmin's hosts in its code (`sso.garmin.com`, `diauth.garmin.com`,
`connectapi.garmin.com`), so nothing in our code or config points it elsewhere. What does is the
configuration every HTTP client here already reads from the environment: `HTTPS_PROXY` (requests and
curl_cffi both honour it) names `Proxy`, a CONNECT proxy on loopback that tunnels every Garmin host to
`StandIn`, an aiohttp server on loopback whose TLS certificate for those names is signed by a CA made
for the test, which `REQUESTS_CA_BUNDLE` names (both clients honour that too). The proxy refuses, and
records as a violation, any CONNECT to another host; nothing reaches the network.

What the stand-in answers follows shared/reference/cloud-and-formats.md §4.3 and the library's own
requests (garminconnect 0.3.2, `client.py`): the mobile SSO login (`/mobile/api/login`, answered
`MFA_REQUIRED` when `mfa` is set, then `/mobile/api/mfa/verifyCode`), the DI token exchange and refresh
(`/di-oauth2-service/oauth/token`), the social profile, and `POST /upload-service/upload` (multipart
field `file`, bearer token, `201 Created`). Each uploaded file is decoded with fitdecode and kept as
its `weight_scale` messages. Where the reference is silent the stand-in chooses: tokens are JWT-shaped
with an `exp`, an expired one is 401, and `upload_status` forces an answer (401, 403, 429).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import io
import ipaddress
import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fitdecode
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOSTS = ("sso.garmin.com", "diauth.garmin.com", "connectapi.garmin.com")
MFA_CODE = "135790"
DISPLAY_NAME = "fra-runs"


def _jwt(claims: dict[str, Any]) -> str:
    """JWT-shaped (the library reads `exp` and `client_id` from the payload); the signature is noise."""
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
    return f"{part({'alg': 'none'})}.{part(claims)}.{secrets.token_urlsafe(16)}"


@dataclass
class Upload:
    filename: str
    messages: list[dict[str, Any]]  # the weight_scale messages, as fitdecode reads them


@dataclass
class Garmin:
    """The account, what the stand-in issued, and what it saw."""

    email: str = "fra@example.org"
    password: str = "garmin password 42"
    mfa: bool = True
    token_lifetime_s: float = 3600.0
    upload_status: int | None = None  # force this answer to uploads (401, 403, 429)
    access_tokens: dict[str, float] = field(default_factory=dict)  # token → expiry
    refresh_tokens: set[str] = field(default_factory=set)
    tickets: set[str] = field(default_factory=set)
    uploads: list[Upload] = field(default_factory=list)
    connects: list[str] = field(default_factory=list)  # CONNECT targets the proxy saw
    requests: list[str] = field(default_factory=list)  # "HOST METHOD PATH"
    violations: list[str] = field(default_factory=list)

    @property
    def secrets(self) -> list[str]:
        """What must never appear in any output."""
        return [self.password, *self.access_tokens, *self.refresh_tokens, *self.tickets]

    @property
    def weigh_ins(self) -> list[dict[str, Any]]:
        return [message for upload in self.uploads for message in upload.messages]

    def violation(self, text: str) -> web.Response:
        self.violations.append(text)
        return web.json_response({"message": f"stand-in: {text}"}, status=400)

    def expire_tokens(self) -> None:
        for token in self.access_tokens:
            self.access_tokens[token] = 0.0

    def issue(self) -> dict[str, Any]:
        access = _jwt({"client_id": "GARMIN_CONNECT_MOBILE_ANDROID_DI_2025Q2",
                       "exp": int(time.time() + self.token_lifetime_s), "n": secrets.token_hex(8)})
        refresh = "refresh-" + secrets.token_urlsafe(24)
        self.access_tokens[access] = time.time() + self.token_lifetime_s
        self.refresh_tokens.add(refresh)
        return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
                "expires_in": int(self.token_lifetime_s)}

    def bearer(self, request: web.Request) -> str | None:
        """The valid access token the request carries, or None."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or self.access_tokens.get(token, 0.0) < time.time():
            return None
        return token


# -- the servers --------------------------------------------------------------------------------------

def _routes(garmin: Garmin) -> list[web.RouteDef]:
    async def login(request: web.Request) -> web.Response:
        if request.query.get("clientId") != "GCM_IOS_DARK":
            return garmin.violation(f"mobile login with clientId {request.query.get('clientId')!r}")
        body = await request.json()
        if (body.get("username"), body.get("password")) != (garmin.email, garmin.password):
            return web.json_response({"responseStatus": {"type": "INVALID_USERNAME_PASSWORD"}})
        if garmin.mfa:
            return web.json_response({"responseStatus": {"type": "MFA_REQUIRED"},
                                      "customerMfaInfo": {"mfaLastMethodUsed": "email"}})
        return web.json_response({"responseStatus": {"type": "SUCCESSFUL"}, "serviceTicketId": ticket()})

    def ticket() -> str:
        issued = "ST-" + secrets.token_urlsafe(20)
        garmin.tickets.add(issued)
        return issued

    async def verify(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("mfaVerificationCode") != MFA_CODE:
            return web.json_response({"responseStatus": {"type": "INVALID_MFA_CODE"}})
        return web.json_response({"responseStatus": {"type": "SUCCESSFUL"}, "serviceTicketId": ticket()})

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") == "refresh_token":
            if form.get("refresh_token") not in garmin.refresh_tokens:
                return web.json_response({"error": "invalid_grant"}, status=401)
            garmin.refresh_tokens.discard(str(form["refresh_token"]))
            return web.json_response(garmin.issue())
        if form.get("service_ticket") not in garmin.tickets:
            return web.json_response({"error": "invalid_grant"}, status=400)
        garmin.tickets.discard(str(form["service_ticket"]))
        return web.json_response(garmin.issue())

    async def profile(request: web.Request) -> web.Response:
        if garmin.bearer(request) is None:
            return web.json_response({"message": "unauthorized"}, status=401)
        return web.json_response({"displayName": DISPLAY_NAME, "fullName": "Franziska"})

    async def upload(request: web.Request) -> web.Response:
        if garmin.upload_status is not None:
            return web.json_response({"message": f"forced {garmin.upload_status}"}, status=garmin.upload_status)
        if garmin.bearer(request) is None:
            return web.json_response({"message": "unauthorized"}, status=401)
        if not request.content_type.startswith("multipart/form-data"):
            return garmin.violation(f"an upload of type {request.content_type}")
        reader = await request.multipart()
        part = await reader.next()
        if part is None or getattr(part, "name", None) != "file" or not str(part.filename or "").endswith(".fit"):
            return garmin.violation("an upload without a multipart field 'file' named *.fit")
        data = await part.read()  # type: ignore[union-attr]
        try:
            messages = _weight_scale_messages(bytes(data))
        except fitdecode.FitError as error:
            return garmin.violation(f"an upload that is not a FIT file: {error}")
        garmin.uploads.append(Upload(str(part.filename), messages))
        return web.json_response({"detailedImportResult": {"uploadId": len(garmin.uploads), "successes": [],
                                                           "failures": []}}, status=201)

    return [
        web.post("/mobile/api/login", login),
        web.post("/mobile/api/mfa/verifyCode", verify),
        web.post("/di-oauth2-service/oauth/token", token),
        web.get("/userprofile-service/socialProfile", profile),
        web.post("/upload-service/upload", upload),
    ]


def _weight_scale_messages(data: bytes) -> list[dict[str, Any]]:
    """fitdecode, a decoder independent of the SDK that wrote the file, with its CRC checks on."""
    found = []
    with fitdecode.FitReader(io.BytesIO(data), check_crc=fitdecode.CrcCheck.ENABLED) as fit:
        for frame in fit:
            if isinstance(frame, fitdecode.FitDataMessage) and frame.name == "weight_scale":
                found.append({item.name: item.value for item in frame.fields if item.value is not None})
    return found


@web.middleware
async def _record(request: web.Request, handler: Any) -> web.StreamResponse:
    garmin: Garmin = request.app[GARMIN]
    host = request.host.split(":")[0]
    garmin.requests.append(f"{host} {request.method} {request.path}")
    return await handler(request)


GARMIN = web.AppKey("garmin", Garmin)


# -- TLS: a CA for the test, and a certificate for Garmin's names ----------------------------------

@dataclass(frozen=True)
class Certificates:
    ca_file: Path
    cert_file: Path
    key_file: Path


def make_certificates(directory: Path) -> Certificates:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stand-in CA for tests")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTS[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host) for host in HOSTS]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    paths = Certificates(directory / "ca.pem", directory / "garmin.pem", directory / "garmin.key")
    paths.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    return paths


# -- the proxy ------------------------------------------------------------------------------------------

MAX_HEAD_BYTES = 8192


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(ConnectionError, OSError, RuntimeError):
        writer.close()


def _tunnel(garmin: Garmin, tls_port: int, open_writers: set[asyncio.StreamWriter]) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        open_writers.add(writer)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.close()
            return
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        host, _, port = target.rpartition(":")
        garmin.connects.append(target)
        if method != "CONNECT" or host not in HOSTS or port != "443":
            garmin.violations.append(f"the proxy was asked to {method} {target}")
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", tls_port)
        open_writers.add(upstream_writer)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    return handle


class StandIn:
    """The stand-in and its proxy on their own event loop in a thread, each on a free loopback port."""

    def __init__(self, garmin: Garmin, certificates: Certificates) -> None:
        self.garmin = garmin
        self.certificates = certificates
        self.proxy_url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="garmin-stand-in", daemon=True)
        self._runner: web.AppRunner | None = None
        self._proxy: asyncio.Server | None = None
        self._tunnels: set[asyncio.StreamWriter] = set()

    def start(self) -> None:
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        self.proxy_url = f"http://127.0.0.1:{port}"

    async def _start(self) -> int:
        app = web.Application(middlewares=[_record], client_max_size=4 * 2**20)
        app[GARMIN] = self.garmin
        app.add_routes(_routes(self.garmin))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certificates.cert_file, self.certificates.key_file)
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        tls_port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        self._proxy = await asyncio.start_server(_tunnel(self.garmin, tls_port, self._tunnels), "127.0.0.1", 0,
                                                 limit=MAX_HEAD_BYTES)
        return int(self._proxy.sockets[0].getsockname()[1])

    def environment(self) -> dict[str, str]:
        """What points every HTTP client of a process at the stand-in (and only there)."""
        return {"HTTPS_PROXY": self.proxy_url, "https_proxy": self.proxy_url, "NO_PROXY": "", "no_proxy": "",
                "REQUESTS_CA_BUNDLE": str(self.certificates.ca_file), "CURL_CA_BUNDLE": str(self.certificates.ca_file)}

    def stop(self) -> None:
        async def stop() -> None:
            if self._proxy is not None:
                self._proxy.close()
            for writer in self._tunnels:  # clients keep connections alive: end them
                writer.close()
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
