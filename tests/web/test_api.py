"""Every JSON endpoint of the household page against a real `interceptor serve` whose journal was filled by
real scale conversations; bad input gets a clear 4xx and changes nothing."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from interceptor.withings.scale import read_response
from tests.conftest import (
    FIXTURES,
    INTERCEPTOR,
    NO_RATE_LIMIT,
    Served,
    free_port,
    run_cli,
    start_server,
    wait_for_port,
)
from tests.dns.dns_support import first_dns_answer
from tests.web.support import FRED_DAYS, client, csrf_token, fill, guest, hidden_csrf, write_config


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("web-api")
    server = start_server(write_config(root), root / "data", env=NO_RATE_LIMIT)  # fill: 45 weigh-ins
    fill(server)
    yield server
    server.kill()


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A household whose journal holds only history imported from a Zepp Life export (Fred twice,
    Franziska once), before the server started: no scale has talked to it. Its InfluxDB is a port
    nobody listens on, so the weigh-ins wait in the outbox."""
    root = tmp_path_factory.mktemp("web-imported")
    config = write_config(root, '\n[influx]\nurl = "http://127.0.0.1:9"\ndatabase = "nowhere"\n')
    result = run_cli("import", str(FIXTURES / "imports" / "zepp-life.zip"), "--password", "--config", str(config),
                     "--data-dir", str(root / "data"), input="zepp-sample\n")
    assert result.returncode == 0, result.stderr
    server = start_server(config, root / "data", env=NO_RATE_LIMIT)
    yield server
    server.kill()


def listed(served: Served, *args: str) -> list[dict]:
    result = served.cli("measurements", "list", "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def get_json(served: Served, path: str) -> tuple[int, dict]:
    async with client() as session, session.get(served.web_url + path) as response:
        return response.status, await response.json()


async def test_home_says_each_persons_latest_weight_in_their_unit(served: Served) -> None:
    status, home = await get_json(served, "/api/v1/home")
    assert status == 200
    fred, franziska = home["people"]
    assert (fred["name"], fred["unit"]) == ("Fred", "kg")
    assert fred["latest"]["weight"].endswith(" kg") and fred["latest"]["when"].startswith("yesterday")
    assert [change["over"] for change in fred["changes"]] == ["since " + fred["changes"][0]["over"][6:], "7 days",
                                                             "30 days"]
    assert fred["left_out"].startswith("No body fat or muscle: no impedance")  # a weight-only scale says why
    assert franziska["unit"] == "st" and franziska["latest"]["weight"] == "9 st 1.8 lb"  # 57.95 kg
    assert franziska["latest"]["when"].startswith(("this ", "tonight"))
    assert franziska["changes"][0]["text"] == "\u22120.8 lb"  # −0.35 kg since two days ago, in pounds
    assert franziska["goal"] == "goal 8 st 9.3 lb: 6.5 lb to go"
    assert home["unclaimed"] >= 2


async def test_person_page_data_ranges_charts_and_bad_input(served: Served) -> None:
    status, page = await get_json(served, "/api/v1/people/fed?range=1m&show=fat,water")
    assert status == 200 and page["range"] == "1m" and page["show"] == ["fat", "water"]
    assert page["weigh_ins_in_range"] == 30  # daily, an hour before now, the last 30 of them within 31 days
    days = page["charts"]["weight"]
    assert len(days) == 30 and all(abs(day["value"] - 85.5) < 2 for day in days)
    last_week = [day["value"] for day in days[-7:]]
    assert days[-1]["average_7d"] == pytest.approx(sum(last_week) / 7)
    assert page["charts"]["fat"] == []  # a weight-only scale: nothing to draw, and no fake zeros
    row = page["weigh_ins"][0]
    assert row["metrics"]["bmi"]["method"] == "bmi" and row["metrics"]["bmi"]["confidence_words"]
    status, everything = await get_json(served, "/api/v1/people/fed?range=all")
    assert everything["weigh_ins_in_range"] == FRED_DAYS
    for query, fragment in (("range=2w", "range '2w' is unknown"), ("show=bmi", "show 'bmi' is unknown"),
                            ("after=yesterday", "not a page position")):
        status, error = await get_json(served, f"/api/v1/people/fed?{query}")
        assert status == 400 and fragment in error["error"]
    status, error = await get_json(served, "/api/v1/people/zed")
    assert status == 404 and "nobody called 'zed'" in error["error"]


async def test_table_pages_follow_the_older_cursor(served: Served) -> None:
    _, first = await get_json(served, "/api/v1/people/fed?range=all")
    assert len(first["weigh_ins"]) == 30 and first["older"]  # a page, and where the next one starts
    _, second = await get_json(served, f"/api/v1/people/fed?range=all&after={first['older']}")
    assert len(second["weigh_ins"]) == FRED_DAYS - 30 and second["older"] is None
    ids = [row["id"] for row in first["weigh_ins"] + second["weigh_ins"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == FRED_DAYS


async def test_csv_is_what_the_range_shows(served: Served) -> None:
    async with client() as session, session.get(served.web_url + "/people/fed/weigh-ins.csv?range=1m") as response:
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/csv")
        assert 'filename="fed-1m.csv"' in response.headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert len(rows) == 30 and {row["user"] for row in rows} == {"fed"}
    assert rows[0]["taken_at"] < rows[-1]["taken_at"] and rows[0]["bmi_method"] == "bmi"


async def test_claim_hide_undo_and_every_refusal(served: Served) -> None:
    meastime = int(time.time()) - 300
    await guest(served, 71_300, meastime)
    (waiting,) = [item for item in listed(served, "--user", "unassigned") if item["readings"]["weight_kg"] == 71.3]
    identifier = waiting["id"]
    base = served.web_url
    async with client() as session:
        token = await csrf_token(session, base)
        status, unclaimed = await get_json(served, "/api/v1/unclaimed")
        assert identifier in [item["id"] for item in unclaimed["weigh_ins"]]

        async def post(path: str, data: dict | None = None, *, with_token: bool = True,
                       as_json: bool = False) -> tuple[int, dict]:
            headers = {"X-CSRF-Token": token} if with_token else {}
            body = {"json": data} if as_json else {"data": data or {}}
            async with session.post(base + path, headers=headers, **body) as response:
                return response.status, await response.json()

        claim = f"/api/v1/weigh-ins/{identifier}/claim"
        assert await post(claim, {"person": "fra"}, with_token=False) == (
            403, {"error": "missing or wrong CSRF token: reload the page and try again"
                           " (API clients: GET /api/v1/session first)"})
        status, error = await post(claim, {"person": "zed"})
        assert status == 422 and "nobody called 'zed'" in error["error"]
        status, error = await post(claim, {"person": "Fred; DROP"})
        assert status == 400 and "not a person's slug" in error["error"]
        status, error = await post(claim, {})
        assert status == 400 and "say who it was" in error["error"]
        status, error = await post("/api/v1/weigh-ins/999999/claim", {"person": "fra"})
        assert status == 404 and "no measurement 999999" in error["error"]
        status, error = await post("/api/v1/weigh-ins/-1/claim", {"person": "fra"})
        assert status == 400
        status, error = await post(f"/api/v1/weigh-ins/{identifier}/frobnicate")
        assert status == 404
        (still,) = [item for item in listed(served) if item["id"] == identifier]
        assert still["user"] is None and still["assigned_by"] == "none"  # nothing changed by any of those

        status, claimed = await post(claim, {"person": "fra"}, as_json=True)
        assert status == 200 and claimed["weigh_in"]["assigned_by"] == "manual"
        assert claimed["weigh_in"]["weight"] == "11 st 3.2 lb"  # Franziska reads stones
        assert claimed["weigh_in"]["metrics"]["bmi"]["value"] == pytest.approx(71.3 / 1.61**2)
        status, error = await post(claim, {"person": "fed"})
        assert status == 409 and "already belongs to fra" in error["error"]
        status, error = await post(f"/api/v1/weigh-ins/{identifier}/hide")
        assert status == 409
        status, undone = await post(f"/api/v1/weigh-ins/{identifier}/undo")
        assert status == 200 and undone["weigh_in"]["assigned_by"] == "none"
        status, error = await post(f"/api/v1/weigh-ins/{identifier}/undo")
        assert status == 409 and "nothing to undo" in error["error"]

        status, hidden = await post(f"/api/v1/weigh-ins/{identifier}/hide")
        assert status == 200 and hidden["weigh_in"]["assigned_by"] == "guest"
        status, unclaimed = await get_json(served, "/api/v1/unclaimed")
        assert identifier not in [item["id"] for item in unclaimed["weigh_ins"]]
        (stored,) = [item for item in listed(served) if item["id"] == identifier]
        assert stored["user"] is None and stored["assigned_by"] == "guest"

    # A weigh-in that is not a weigh-in (a WS-50 room reading) cannot be claimed either.
    fred_first = listed(served, "--user", "fed")[0]["id"]
    async with client() as session:
        token = await csrf_token(session, base)
        async with session.post(f"{base}/api/v1/weigh-ins/{fred_first}/undo",
                                headers={"X-CSRF-Token": token}) as response:
            assert response.status == 409  # attributed by the scale, not on this page


async def test_form_claim_redirects_with_undo(served: Served) -> None:
    await guest(served, 64_400, int(time.time()) - 200)
    (waiting,) = [item for item in listed(served, "--user", "unassigned") if item["readings"]["weight_kg"] == 64.4]
    async with client() as session:
        async with session.get(served.web_url + "/unclaimed") as response:
            token = hidden_csrf(await response.text())
        async with session.post(f"{served.web_url}/weigh-ins/{waiting['id']}/claim",
                                data={"person": "fed", "csrf": token}, allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"] == f"/unclaimed?claimed={waiting['id']}"
        async with session.get(served.web_url + response.headers["Location"]) as page:
            html = await page.text()
        assert "is now filed under Fred." in html and f'action="/weigh-ins/{waiting["id"]}/undo"' in html
        async with session.post(f"{served.web_url}/weigh-ins/{waiting['id']}/undo", data={"csrf": token},
                                allow_redirects=False) as response:
            assert response.status == 303
    (back,) = [item for item in listed(served) if item["id"] == waiting["id"]]
    assert back["user"] is None


async def test_devices_health_and_session(served: Served) -> None:
    status, devices = await get_json(served, "/api/v1/devices")
    (ws50,) = devices["devices"]
    assert ws50["device_id"] == "00:24:e4:06:59:dc" and ws50["model"] == "WS-50"
    assert ws50["battery_pct"] == 69 and ws50["firmware"] == "200" and ws50["warnings"] == []
    assert ws50["last_conversation"]["peer"] == "127.0.0.1"
    assert ws50["last_conversation"]["paths"]["/cgi-bin/measure"] >= 1
    status, health = await get_json(served, "/api/v1/health")
    assert status == 200 and health["version"] and health["journal"]["bytes"] > 0
    assert health["journal"]["last_weigh_in"].startswith(("this ", "tonight"))  # said in words for the page ...
    assert health["journal"]["last_weigh_in_at"] == max(item["taken_at"] for item in listed(served))  # ... and ISO
    assert health["dns"] == {"enabled": False, "answers": []} and health["outbox"] == []
    assert any("127.0.0.1 talked" in verdict["text"] for verdict in health["verdicts"])
    status, session = await get_json(served, "/api/v1/session")
    assert session["password_required"] is False and len(session["csrf_token"]) == 32


async def test_imported_history_is_listed_apart_from_the_scales_without_warnings(imported: Served) -> None:
    status, devices = await get_json(imported, "/api/v1/devices")
    assert status == 200 and devices["devices"] == []
    assert sorted((source["device_id"], source["name"], source["weigh_ins"]) for source in devices["imported"]) == [
        ("zepp-life:fed", "Zepp Life export", 2), ("zepp-life:fra", "Zepp Life export", 1)]
    assert all("warnings" not in source and source["last_import_text"].startswith(("this ", "tonight"))
               for source in devices["imported"])
    async with client() as session, session.get(imported.web_url + "/devices") as response:
        html = await response.text()
    assert "No scale has talked to this server yet" in html and "Imported history" in html
    assert "Battery" not in html and "not heard from" not in html
    assert "<td>Zepp Life export <code>zepp-life:fed</code></td><td>2</td>" in html


async def test_health_gives_each_moment_in_words_and_as_iso_8601(imported: Served) -> None:
    status, health = await get_json(imported, "/api/v1/health")
    (influx,) = health["outbox"]
    assert status == 200 and influx["items"] == 3 and influx["oldest"] in ("moments", "a minute")
    oldest = datetime.fromisoformat(influx["oldest_enqueued_at"])
    assert influx["oldest_enqueued_at"].endswith("Z") and abs(oldest.timestamp() - time.time()) < 90
    assert health["journal"]["last_weigh_in_at"] == max(item["taken_at"] for item in listed(imported))
    assert health["journal"]["last_weigh_in_at"].endswith("Z")


async def test_ffmi_columns_say_the_formula_we_compute_them_with(imported: Served) -> None:
    """Zepp Life gave a body fat; fat-free mass follows from it, FFMI from that: not the scale's own value."""
    async with client() as session, session.get(imported.web_url + "/people/fed?range=all") as response:
        html = await response.text()
    assert "<th>Body fat<small>the scale&#39;s own value</small></th>" in html  # the vendor's, as it came
    assert "<th>FFMI<small>fat-free mass ÷ height²</small></th>" in html
    assert "<th>FFMI (at 1.8 m)<small>FFMI + 6.1 × (1.8 m − height)</small></th>" in html


async def test_every_response_carries_the_security_headers(served: Served) -> None:
    async with client() as session:
        for path in ("/", "/people/fed", "/unclaimed", "/devices", "/health", "/api/v1/home", "/nowhere"):
            async with session.get(served.web_url + path) as response:
                assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'none'
                assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
                assert response.headers["Referrer-Policy"] == "no-referrer"
                assert response.headers["Cache-Control"] == "no-store"
                cookie = response.headers.get("Set-Cookie", "")
                assert not cookie or ("HttpOnly" in cookie and "SameSite=Strict" in cookie)


async def closed_by_server(reader: asyncio.StreamReader, limit: float = 5.0) -> bool:
    """Whether the server closed (FIN or reset) within `limit` seconds, reading whatever came first."""
    try:
        while await asyncio.wait_for(reader.read(65536), limit):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


async def connect(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def test_a_slow_client_is_cut_off_and_a_flood_of_connections_is_bounded(tmp_path: Path) -> None:
    """The page's listener is the guarded one of every HTTP listener, under the `[web]` keys. Each part
    comes from its own loopback address (another device), so each has its own share and log budget."""
    config = write_config(tmp_path, "\n[web]\nrequest_timeout_s = 1\nmax_connections_per_client = 3\n"
                                    "requests_per_second = 1\nrequest_burst = 4\n")
    server = start_server(config, tmp_path / "data")
    port = server.web_port
    try:
        reader, writer = await connect(port, "127.0.0.1")
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # ... and never the end of the head
        started = time.monotonic()
        assert await closed_by_server(reader) and 0.8 < time.monotonic() - started < 3  # after 1 s
        writer.close()

        # Three requests still arriving hold the address's three connections: a fourth is closed at once.
        sending = [await connect(port, "127.0.0.2") for _ in range(3)]
        for _, sending_writer in sending:
            sending_writer.write(b"GET / HTTP/1.1\r\n")
        started = time.monotonic()
        await asyncio.sleep(0.2)
        extra_reader, extra_writer = await connect(port, "127.0.0.2")
        assert await closed_by_server(extra_reader) and time.monotonic() - started < 0.9  # before any timed out
        for connection in (*sending, (extra_reader, extra_writer)):
            connection[1].close()

        # Three idle connections: a fourth takes the place of the oldest, and is answered.
        idle = [await connect(port, "127.0.0.3") for _ in range(3)]
        await asyncio.sleep(0.1)
        fourth_reader, fourth_writer = await connect(port, "127.0.0.3")
        fourth_writer.write(b"GET /api/v1/session HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(fourth_reader.readline(), 5)).startswith(b"HTTP/1.1 200")
        assert await closed_by_server(idle[0][0])
        assert not await closed_by_server(idle[1][0], 0.1)
        for connection in (*idle, (fourth_reader, fourth_writer)):
            connection[1].close()

        # Over requests_per_second (bursts of request_burst): 429, and the connection closed.
        rate_reader, rate_writer = await connect(port, "127.0.0.4")
        statuses = []
        try:
            for _ in range(6):
                rate_writer.write(b"GET /api/v1/session HTTP/1.1\r\nHost: x\r\n\r\n")
                statuses.append((await asyncio.wait_for(read_response(rate_reader), 5)).status)
        except (asyncio.IncompleteReadError, ConnectionError):
            statuses.append(0)  # closed after the 429
        rate_writer.close()
        assert statuses == [200, 200, 200, 200, 429, 0]
    finally:
        log = server.kill()
    assert "closed an HTTP connection from 127.0.0.1: no reply within [web] request_timeout_s 1 s" in log
    assert ("closed a new HTTP connection from 127.0.0.2: every connection in the way of"
            " [web] max_connections_per_client or [web] max_connections is busy") in log
    assert "closed an HTTP connection from 127.0.0.3: made room for a newer connection" in log
    assert "closed an HTTP connection from 127.0.0.4: answered 429: more than [web] requests_per_second 1" in log


async def test_only_allowed_clients_and_with_a_password_only_after_login(tmp_path: Path) -> None:
    config = write_config(tmp_path, '\n[web]\nallow_clients = ["10.0.0.0/8"]\n')
    server = start_server(config, tmp_path / "data")
    try:
        status, error = await get_json(server, "/api/v1/home")
        assert status == 403 and "only the household's own network" in error["error"]
    finally:
        log = server.kill()
    assert "web: refused 127.0.0.1: not in [web] allow_clients" in log

    config.write_text(config.read_text().replace('allow_clients = ["10.0.0.0/8"]', 'password = "correct horse"'))
    server = start_server(config, tmp_path / "data")
    base = server.web_url
    try:
        async with client() as session:
            status, error = await get_json(server, "/api/v1/home")
            assert status == 401
            async with session.get(base + "/", allow_redirects=False) as response:
                assert response.status == 303 and response.headers["Location"] == "/login"
            async with session.get(base + "/login") as response:
                html = await response.text()
                token = hidden_csrf(html)
            assert all(f'href="/{page}"' not in html for page in ("unclaimed", "devices", "health"))  # not yet
            async with session.post(base + "/login", data={"password": "wrong horse", "csrf": token}) as response:
                assert response.status == 401 and "not the one in" in await response.text()
            async with session.post(base + "/login", data={"password": "correct horse"}) as response:
                assert response.status == 403  # no CSRF token: not even a login
            async with session.post(base + "/login", data={"password": "correct horse", "csrf": token},
                                    allow_redirects=False) as response:
                assert response.status == 303
                cookie = response.headers["Set-Cookie"]
                assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "correct" not in cookie
            async with session.get(base + "/api/v1/home") as response:
                assert response.status == 200
            async with session.get(base + "/") as response:
                html = await response.text()
                assert "Log out" in html and "correct horse" not in html
                assert all(f'href="/{page}"' in html for page in ("unclaimed", "devices", "health"))
            token = await csrf_token(session, base)
            async with session.post(base + "/logout", data={"csrf": token}, allow_redirects=False) as response:
                assert response.status == 303
            async with session.get(base + "/api/v1/home") as response:
                assert response.status == 401
    finally:
        log = server.kill()
    assert "correct horse" not in log and "wrong horse" not in log


async def test_health_shows_what_the_dns_responder_told_the_scale(tmp_path: Path) -> None:
    import dns.message
    import dns.query

    dns_port, http_port, web_port = free_port(), free_port(), free_port()
    config = write_config(tmp_path, f'\n[http]\nlisten = "127.0.0.1:{http_port}"\n'
                                    f'[web]\nlisten = "127.0.0.1:{web_port}"\n'
                                    f'[dns]\nlisten = ["127.0.0.1:{dns_port}"]\nupstreams = ["127.0.0.1:9"]\n'
                                    '[[dns.intercept]]\nname = "scalews.withings.net"\naddress = "192.168.1.10"\n')
    process = subprocess.Popen([str(INTERCEPTOR), "serve", "--config", str(config), "--data-dir", str(tmp_path / "d")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(web_port, process)
        first_dns_answer(dns_port)
        # An IPv4-only box has no AAAA for the name; asked last, that empty answer is not an alarm.
        dns.query.udp(dns.message.make_query("scalews.withings.net", "AAAA"), "127.0.0.1", port=dns_port, timeout=2)
        served = Served(process, http_port, config, tmp_path / "d", tmp_path / "unused.log", web_port)
        status, health = await get_json(served, "/api/v1/health")
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert status == 200 and health["dns"]["enabled"] is True
    assert [(asked["client"], asked["name"], asked["type"], asked["addresses"])
            for asked in health["dns"]["answers"]] == [("127.0.0.1", "scalews.withings.net", "AAAA", []),
                                                        ("127.0.0.1", "scalews.withings.net", "A", ["192.168.1.10"])]
    (verdict,) = [v for v in health["verdicts"] if "asked for scalews.withings.net" in v["text"]]
    assert verdict["ok"] and verdict["text"].endswith("and was told 192.168.1.10")


def test_serve_loads_the_template_engine_and_the_dns_library_only_when_used() -> None:
    """Idle memory of `serve` (issue 10's floor is 60 MB): jinja2 comes with the first page someone asks
    for (the tests above render every page), dnslib with the DNS responder."""
    code = ("import sys, interceptor.serve, interceptor.web.server, interceptor.web.app;"
            " print(sorted({'jinja2', 'dnslib'} & set(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout
