"""The household page and its JSON API: one aiohttp application on its own listener, sharing the
journal and the pipeline with the emulated Withings cloud.

Every page is a view (`views`) computed and rendered on a journal reader thread, so the event loop,
which also answers the scales and the household's DNS, never waits on the disk nor on a template.
Every change (a claim, "not a household member", undo) goes through `Pipeline.assign`, like
`interceptor measurements assign`: composition is recomputed and every sink gets the change.
HTML forms post to the page's own routes and are redirected back (so reading and claiming work
without JavaScript); API clients post to `/api/v1/` and get JSON. docs/api.md lists every route.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from interceptor import __version__
from interceptor.config import Config, Person
from interceptor.listing import write_csv
from interceptor.model import Measurement
from interceptor.pipeline import Pipeline
from interceptor.store import household
from interceptor.store.household import Cursor
from interceptor.store.journal import Journal, Reader
from interceptor.store.measurements import GUEST, Filter
from interceptor.web import params, views, words
from interceptor.web.access import SESSION, Access, refusal, security_headers
from interceptor.web.params import BadInput

if TYPE_CHECKING:  # imported when used: idle memory of `serve` (jinja2 with the first page; dnslib with DNS)
    import jinja2

    from interceptor.dns.answers import InterceptLog

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_BODY_BYTES = 16 * 1024  # a claim form is a few dozen bytes
CSV_CHUNK = 500
Clock = Callable[[], datetime]


class Conflict(Exception):
    """The weigh-in is not in the state the request expected (claimed already, or not by hand)."""


@dataclass
class Health:
    """What the health page reads from outside the journal; `serve` fills in the DNS responder's record
    once it is listening."""

    dns_enabled: bool
    intercepted_names: tuple[str, ...]
    dns_answers: InterceptLog | None = None
    dns_clock: Callable[[], float] | None = None


def _static(name: str) -> bytes:
    return resources.files("interceptor.web").joinpath("static").joinpath(name).read_bytes()


class WebPage:
    def __init__(self, config: Config, journal: Journal, pipeline: Pipeline, access: Access, health: Health,
                 clock: Clock) -> None:
        self.config = config
        self.journal = journal
        self.pipeline = pipeline
        self.access = access
        self.health_sources = health
        self.clock = clock
        # Read once, before the listener opens: serving them is a memory copy.
        self.css = _static("app.css")
        self.css_path = f"/static/app-{hashlib.sha256(self.css).hexdigest()[:12]}.css"
        self.icon = _static("favicon.svg")
        self._templates: jinja2.Environment | None = None
        self._templates_made = threading.Lock()

    @property
    def templates(self) -> jinja2.Environment:
        """Made for the first page someone asks for, not at start: jinja2 and the compiled templates
        are memory a box that mostly answers scales holds only once the page is used. All are
        compiled then, on the reader thread rendering that first page, not one per later page."""
        with self._templates_made:
            if self._templates is None:
                import jinja2

                templates = jinja2.Environment(
                    loader=jinja2.PackageLoader("interceptor.web", "templates"), autoescape=True,
                    trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
                templates.globals.update(version=__version__, css_path=self.css_path, ago=words.ago,
                                         password_required=self.access.password_required)
                for name in templates.list_templates():
                    templates.get_template(name)
                self._templates = templates
            return self._templates

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.home_page),
            web.get("/people/{slug}", self.person_page),
            web.get("/people/{slug}/weigh-ins.csv", self.csv),
            web.get("/unclaimed", self.unclaimed_page),
            web.post("/weigh-ins/{id}/{action}", self.change_form),
            web.get("/devices", self.devices_page),
            web.get("/health", self.health_page),
            web.get("/login", self.login_page),
            web.post("/login", self.login),
            web.post("/logout", self.logout),
            web.get(self.css_path, self.stylesheet),
            web.get("/favicon.svg", self.favicon),
            web.get("/api/v1/session", self.session_api),
            web.get("/api/v1/home", self.home_api),
            web.get("/api/v1/people/{slug}", self.person_api),
            web.get("/api/v1/people/{slug}/weigh-ins.csv", self.csv),
            web.get("/api/v1/unclaimed", self.unclaimed_api),
            web.post("/api/v1/weigh-ins/{id}/{action}", self.change_api),
            web.get("/api/v1/devices", self.devices_api),
            web.get("/api/v1/health", self.health_api),
        ]

    # -- plumbing -------------------------------------------------------------------------------

    async def _read(self, query: Callable[[Reader], T]) -> T:
        return await self.journal.read(query)

    def _render(self, request: web.Request, template: str, title: str, page: str, unclaimed: int,
                **context: Any) -> str:
        session = request[SESSION]
        return self.templates.get_template(template).render(
            title=title, page=page, unclaimed_count=unclaimed, csrf=self.access.csrf_token(session),
            logged_in=self.access.logged_in(session), **context)

    def _person(self, slug: str) -> Person:
        person = self.config.person(slug)
        if person is None:
            raise web.HTTPNotFound(text=f"nobody called {slug!r} lives here; the household is: "
                                        f"{', '.join(p.slug for p in self.config.users) or 'nobody yet'}")
        return person

    async def _page(self, request: web.Request, template: str, title: str, page: str,
                    view: Callable[[Reader, datetime], object]) -> web.Response:
        now = self.clock()

        def job(reader: Reader) -> str:
            result = view(reader, now)
            return self._render(request, template, title, page, household.unclaimed_count(reader), view=result,
                                now=now)

        return web.Response(text=await self._read(job), content_type="text/html")

    async def _json(self, view: Callable[[Reader, datetime], Any]) -> web.Response:
        now = self.clock()
        text = await self._read(lambda reader: json.dumps(view(reader, now).as_json(), ensure_ascii=False))
        return web.Response(text=text, content_type="application/json")

    # -- home -----------------------------------------------------------------------------------

    def _home(self, reader: Reader, now: datetime) -> views.Home:
        return views.home(reader, self.config, now)

    async def home_page(self, request: web.Request) -> web.Response:
        return await self._page(request, "home.html", "Home", "home", self._home)

    async def home_api(self, request: web.Request) -> web.Response:
        return await self._json(self._home)

    # -- a person -------------------------------------------------------------------------------

    def _person_view(self, request: web.Request) -> Callable[[Reader, datetime], views.PersonPage]:
        person = self._person(request.match_info["slug"])
        query = request.query
        range_name = params.time_range(query.get("range"))
        shown = params.charts(query.getall("show", []))
        after = params.cursor(query.get("after"))
        return lambda reader, now: views.person_page(reader, self.config, person, now, range_name, shown, after)

    async def person_page(self, request: web.Request) -> web.Response:
        view = self._person_view(request)
        person = self._person(request.match_info["slug"])
        return await self._page(request, "person.html", person.name, "person", view)

    async def person_api(self, request: web.Request) -> web.Response:
        return await self._json(self._person_view(request))

    async def csv(self, request: web.Request) -> web.StreamResponse:
        """The weigh-ins of the range shown, streamed page by page: memory stays flat for any history."""
        person = self._person(request.match_info["slug"])
        range_name = params.time_range(request.query.get("range"))
        start = params.since(range_name, self.clock())
        where = Filter(user=person.slug, kind="body", since=start)
        response = web.StreamResponse(headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{person.slug}-{range_name}.csv"'})
        await response.prepare(request)
        after: Cursor | None = None
        first = True
        while True:
            def chunk(reader: Reader, after: Cursor | None = after, first: bool = first) -> tuple[str, Cursor | None]:
                found = household.raw_page(reader, where, limit=CSV_CHUNK, after=after)
                out = io.StringIO()
                write_csv(out, found, header=first)
                last = Cursor(found[-1][8], found[-1][0]) if len(found) == CSV_CHUNK else None
                return out.getvalue(), last

            text, after = await self._read(chunk)
            await response.write(text.encode("utf-8"))
            first = False
            if after is None:
                break
        await response.write_eof()
        return response

    # -- unclaimed ------------------------------------------------------------------------------

    def _unclaimed_view(self, request: web.Request) -> Callable[[Reader, datetime], views.Unclaimed]:
        after = params.cursor(request.query.get("after"))
        claimed_text = request.query.get("claimed")
        claimed = params.measurement_id(claimed_text) if claimed_text else None
        latest = dict(self.pipeline.latest_weights)
        return lambda reader, now: views.unclaimed(reader, self.config, now, latest, after, claimed)

    async def unclaimed_page(self, request: web.Request) -> web.Response:
        return await self._page(request, "unclaimed.html", "Who was it?", "unclaimed",
                                self._unclaimed_view(request))

    async def unclaimed_api(self, request: web.Request) -> web.Response:
        return await self._json(self._unclaimed_view(request))

    async def _change(self, request: web.Request) -> Measurement:
        """Claim for a person, hide as a guest, or undo: through the pipeline, checked in its transaction."""
        identifier = params.measurement_id(request.match_info["id"])
        action = request.match_info["action"]
        if action == "claim":
            form = await _form(request)
            slug = params.slug(form.get("person"))
            if self.config.person(slug) is None:
                raise _Unprocessable(f"nobody called {slug!r} lives here; claim it for one of: "
                                     f"{', '.join(p.slug for p in self.config.users) or 'nobody yet'}")
            return await self._assign(identifier, slug, guest=False, check=_waiting)
        if action == "hide":
            return await self._assign(identifier, None, guest=True, check=_waiting)
        if action == "undo":
            return await self._assign(identifier, None, guest=False, check=_decided_by_hand)
        raise web.HTTPNotFound(text=f"no action {action!r}; use claim, hide or undo")

    async def _assign(self, identifier: int, slug: str | None, *, guest: bool,
                      check: Callable[[Measurement], None]) -> Measurement:
        try:
            changed = await self.pipeline.assign(identifier, slug, guest=guest, check=check)
        except LookupError as error:
            raise web.HTTPNotFound(text=str(error).strip("'\"")) from None
        log.info("web: weigh-in %d is now %s", identifier,
                 changed.user or ("a guest's" if changed.assignment == GUEST else "unclaimed"))
        return changed

    async def change_form(self, request: web.Request) -> web.StreamResponse:
        try:
            changed = await self._change(request)
        except (BadInput, Conflict, _Unprocessable) as error:
            return refusal(request, _status(error), str(error))
        target = "/unclaimed" if request.match_info["action"] == "undo" else f"/unclaimed?claimed={changed.id}"
        return web.Response(status=303, headers={"Location": target})

    async def change_api(self, request: web.Request) -> web.Response:
        try:
            changed = await self._change(request)
        except (BadInput, Conflict, _Unprocessable) as error:
            return refusal(request, _status(error), str(error))
        person = self.config.person(changed.user) if changed.user else None
        unit = self.config.weight_unit(person) if person else self.config.household.weight_unit
        return web.json_response({"weigh_in": views.row(changed, unit, self.config).as_json()})

    # -- devices and health ---------------------------------------------------------------------

    def _devices(self, reader: Reader, now: datetime) -> views.Devices:
        return views.devices(reader, self.config, now)

    async def devices_page(self, request: web.Request) -> web.Response:
        return await self._page(request, "devices.html", "Devices", "devices", self._devices)

    async def devices_api(self, request: web.Request) -> web.Response:
        return await self._json(self._devices)

    def _health_view(self) -> Callable[[Reader, datetime], views.Health]:
        sources = self.health_sources
        answers = []
        if sources.dns_answers is not None and sources.dns_clock is not None:  # read on the loop that writes it
            answers = sources.dns_answers.snapshot(sources.dns_clock(), self.clock().timestamp())
        sinks = sorted(self.journal.sinks)
        return lambda reader, now: views.health(reader, self.config, now, sinks, sources.dns_enabled, answers,
                                                sources.intercepted_names)

    async def health_page(self, request: web.Request) -> web.Response:
        return await self._page(request, "health.html", "Health", "health", self._health_view())

    async def health_api(self, request: web.Request) -> web.Response:
        return await self._json(self._health_view())

    # -- session --------------------------------------------------------------------------------

    async def session_api(self, request: web.Request) -> web.Response:
        session = request[SESSION]
        return web.json_response({"csrf_token": self.access.csrf_token(session),
                                  "password_required": self.access.password_required,
                                  "logged_in": self.access.logged_in(session)})

    async def login_page(self, request: web.Request) -> web.Response:
        if not self.access.password_required or self.access.logged_in(request[SESSION]):
            return web.Response(status=303, headers={"Location": "/"})
        return web.Response(text=self._render(request, "login.html", "Log in", "login", 0, failed=False),
                            content_type="text/html")

    async def login(self, request: web.Request) -> web.Response:
        form = await _form(request)
        address = request.remote or ""
        if not self.access.login_limiter.allow(address, self.clock().timestamp()):
            log.warning("web: too many login attempts from %s", address)
            return refusal(request, 429, "too many attempts; wait a minute")
        password = form.get("password")
        if not isinstance(password, str) or not await self.access.check_password(password):
            log.warning("web: wrong password from %s", address)
            return web.Response(text=self._render(request, "login.html", "Log in", "login", 0, failed=True),
                                content_type="text/html", status=401)
        response = web.Response(status=303, headers={"Location": "/"})
        self.access.set_cookie(response, self.access.log_in(), lasting=True)
        return response

    async def logout(self, request: web.Request) -> web.Response:
        self.access.log_out(request[SESSION])
        response = web.Response(status=303, headers={"Location": "/login" if self.access.password_required else "/"})
        response.del_cookie("interceptor_session", path="/")
        return response

    # -- static ---------------------------------------------------------------------------------

    async def stylesheet(self, request: web.Request) -> web.Response:
        return web.Response(body=self.css, content_type="text/css",
                            headers={"Cache-Control": "public, max-age=31536000, immutable"})

    async def favicon(self, request: web.Request) -> web.Response:
        return web.Response(body=self.icon, content_type="image/svg+xml",
                            headers={"Cache-Control": "public, max-age=86400"})


class _Unprocessable(ValueError):
    """Well-formed, but naming something that does not exist (a person not in the household)."""


def _status(error: Exception) -> int:
    return 409 if isinstance(error, Conflict) else 422 if isinstance(error, _Unprocessable) else 400


async def _form(request: web.Request) -> dict[str, str]:
    """Form fields, or a JSON object's string fields (API clients may send either)."""
    if request.content_type == "application/json":
        try:
            data = await request.json()
        except ValueError:
            raise BadInput("the body is not JSON; send {\"person\": \"<slug>\"} or a form") from None
        if not isinstance(data, dict):
            raise BadInput("the body must be a JSON object, e.g. {\"person\": \"anna\"}")
        return {key: value for key, value in data.items() if isinstance(value, str)}
    form = await request.post()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _waiting(item: Measurement) -> None:
    if item.user is not None:
        raise Conflict(f"weigh-in {item.id} already belongs to {item.user}; nothing was changed")
    if item.assignment == GUEST:
        raise Conflict(f"weigh-in {item.id} was marked as not a household member; undo that first")


def _decided_by_hand(item: Measurement) -> None:
    if item.assignment not in ("manual", GUEST):
        raise Conflict(f"weigh-in {item.id} was not claimed on this page (it was attributed by "
                       f"{views.ASSIGNED_BY.get(item.assignment, item.assignment)}); nothing to undo")


def create_web_app(config: Config, journal: Journal, pipeline: Pipeline, health: Health,
                   clock: Clock) -> web.Application:
    access = Access(config.web)
    page = WebPage(config, journal, pipeline, access, health, clock)

    @web.middleware
    async def bad_input(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                        ) -> web.StreamResponse:
        try:
            return await handler(request)
        except BadInput as error:
            return refusal(request, 400, str(error))
        except web.HTTPException as error:
            if error.status >= 400:
                return refusal(request, error.status, error.text or error.reason)
            raise

    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[access.middleware, bad_input])
    app.add_routes(page.routes())
    app.on_response_prepare.append(security_headers)
    return app
