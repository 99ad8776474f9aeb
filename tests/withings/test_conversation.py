"""A scale's whole conversation against a real `interceptor serve`, over raw TCP, then read back with the CLI."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import time
from urllib.parse import quote_plus

import pytest

from interceptor.withings import scale
from interceptor.withings.scale import ScaleIdentity, read_response, request_bytes
from tests.conftest import Served, start_server
from tests.withings.samples import first_line

SCALE = ScaleIdentity(mac="00:24:e4:06:59:dc", mfgid=262151, firmware=200, battery_pct=69)


def measurements(served: Served, *args: str) -> list[dict]:
    result = served.cli("measurements", "list", "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def raw_exchange(port: int, payload: bytes) -> tuple[bytes, bool]:
    """Send bytes, read until the server closes or goes quiet; (bytes read, closed by server)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(payload)
        connection.settimeout(1.0)
        received = b""
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except TimeoutError:
            return received, False
        return received, True


async def talk(port: int, *requests: tuple[str, bytes]) -> list[scale.RawResponse]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    responses = []
    try:
        for path, body in requests:
            writer.write(request_bytes(path, body))
            await writer.drain()
            responses.append(await read_response(reader))
    finally:
        writer.close()
        await writer.wait_closed()
    return responses


def test_a_wbs01_weigh_in_is_stored_for_the_right_person_with_the_real_framing(served: Served) -> None:
    meastime = int(time.time()) - 30
    conversation = asyncio.run(scale.weigh_in("127.0.0.1", served.port, scale=SCALE, meastime=meastime,
                                              weight_g=86812))
    once, session, store, delete = (conversation.response(index) for index in range(4))

    # once: Content-Length framing, text/plain, the nonce shape of the captures.
    assert once.status == 200 and once.header("Content-Type") == "text/plain"
    assert once.header("Content-Length") == str(len(once.body)) and not once.chunked
    assert once.json()["status"] == 0

    # session new: chunked in one chunk like the 2013 capture, users built from the household.
    assert session.chunked and session.chunks == [len(session.body)]
    assert session.header("Content-Type") == "text/plain"
    body = session.json()["body"]
    assert "blc" not in body["syp"] and abs(body["syp"]["utc"] - time.time()) < 60
    fed, fra = body["sp"]["users"]
    assert (fed["id"], fed["sn"], fed["ht"], fed["sx"], fed["att"]) == (2507298, "FED", 2.0, 0, 0)
    assert (fra["sn"], fra["ht"], fra["sx"]) == ("FRA", 1.61, 1)
    assert 20 < fed["agt"] < 80 and fed["wt"] == 0
    assert body["ind"]["lg"] == "fr_FR" and body["ind"]["g"] == 98113
    assert body["ctp"]["goff"] in (3600, 7200) and body["ctp"]["dst"] > time.time()

    assert store.json()["status"] == 0 and delete.json() == {"status": 0}

    (stored,) = measurements(served)
    assert stored["user"] == "fed"
    # The weight, and the battery level the scale reported when it opened the session.
    assert stored["readings"] == {"weight_kg": pytest.approx(86.812), "battery_pct": 69}
    assert stored["device_id"] == SCALE.mac and stored["device_model"] == "WS-50"
    assert stored["taken_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(meastime))
    assert stored["source"] == "withings"
    # Weight alone: anthropometric metrics for Fred (2.00 m), each with its method; the rest refused.
    assert stored["metrics"]["bmi"] == {"value": pytest.approx(86.812 / 4), "unit": "kg/m²", "method": "bmi",
                                        "confidence": "anthropometric"}
    assert stored["metrics"]["bmr_kcal"]["method"] == "mifflin1990"
    assert "body_fat_pct" not in stored["metrics"] and "impedance" in stored["refusals"]["body_fat_pct"]

    devices = json.loads(served.cli("devices", "list", "--format", "json").stdout)
    assert devices[0] | {"first_seen": None, "last_seen": None} == {
        "device_id": SCALE.mac, "source": "withings", "model": "WS-50", "firmware": "200", "battery_pct": 69,
        "manufacturing_id": "262151", "first_seen": None, "last_seen": None,
        "address": None, "frames": 0, "rssi_dbm": None, "heard_by": None}  # radio facts: BLE only

    # The next session offers the person's latest weight back to the scale.
    again = asyncio.run(talk(served.port, ("/cgi-bin/session", scale.session_new_body(SCALE))))
    assert again[0].json()["body"]["sp"]["users"][0]["wt"] == pytest.approx(86.812)

    # One INFO line per weigh-in, written by the server's log thread, with its time to the millisecond.
    lines = [line for line in served.kill().splitlines() if "INFO interceptor.pipeline:" in line]
    assert len(lines) == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO interceptor.pipeline: stored body measurement 1"
                        rf" from {SCALE.mac} for fed: 86.81 kg", lines[0]), lines[0]


def test_a_resent_weigh_in_is_stored_once(served: Served) -> None:
    meastime = int(time.time()) - 100
    for _ in range(3):
        asyncio.run(scale.weigh_in("127.0.0.1", served.port, scale=SCALE, meastime=meastime, weight_g=70100))
    assert len(measurements(served)) == 1


def test_ws50_groups_heart_rate_type16_and_environment(served: Served) -> None:
    now = int(time.time())
    groups = [
        {"meastime": now - 600, "measures": [{"value": 84683, "type": 1, "unit": -3},
                                             {"value": 559, "type": 16, "unit": 0},
                                             {"value": 111, "type": 11, "unit": 0}]},
        {"meastime": now - 300, "measures": [{"value": 562, "type": 16, "unit": 0}, {"value": 7, "type": 150}]},
    ]
    # The real WS-50 body (reference sample), moved to a recent meastime.
    v2 = first_line("2013-ws50-v2-measure-request-body.txt").replace(b"1387053012", str(now - 60).encode())
    (session,) = asyncio.run(talk(served.port, ("/cgi-bin/session", scale.session_new_body(SCALE))))
    franziska = session.json()["body"]["sp"]["users"][1]["id"]  # derived from her slug: none configured
    store, environment = asyncio.run(talk(
        served.port,
        ("/cgi-bin/measure", scale.ws50_store_body(SCALE, "s", franziska, groups)),
        ("/cgi-bin/v2/measure", v2 + b"&sessionid=" + b"x" + b"&macaddress=" + SCALE.mac.encode()),
    ))
    assert store.json()["status"] == 0 and environment.json() == {"status": 0}
    first, second = measurements(served)
    assert first["readings"] == {"weight_kg": pytest.approx(84.683), "withings_type16": 559, "heart_rate_bpm": 111}
    assert second["readings"] == {"withings_type16": 562} and second["raw"] == {"withings_type_150": 7}
    assert first["user"] == second["user"] == "fra"
    # Type 16 is kept raw; fat comes from a literature equation on BMI, labelled as such.
    assert first["metrics"]["body_fat_pct"]["confidence"] == "literature"
    assert second["metrics"] == {} and "no weight" in second["refusals"]["composition"]
    (env,) = measurements(served, "--kind", "environment")
    assert env["readings"] == {"temperature_c": pytest.approx(20.2), "co2_ppm": 655}


def test_http10_gets_content_length_and_a_closed_connection(served: Served) -> None:
    for path, body in (("/cgi-bin/once", b"action=get"), ("/cgi-bin/session", scale.session_new_body(SCALE))):
        received, closed = raw_exchange(served.port, request_bytes(path, body, http10=True))
        head, _, payload = received.partition(b"\r\n\r\n")
        assert closed, f"{path}: the server kept an HTTP/1.0 connection open"
        assert b"Transfer-Encoding" not in head
        assert f"Content-Length: {len(payload)}".encode() in head
        assert json.loads(payload)["status"] == 0


@pytest.mark.parametrize(("path", "body", "http_status", "reason"), [
    ("/cgi-bin/measure", b"action=store&sessionid=s&macaddress=00:24:e4:06:59:dc&meastime=1700000000&measures="
     + quote_plus('{"measures":[{"value":-80000,"type":1,"unit":-3}]}').encode(), 200, "weight_kg -80 is below 2 kg"),
    ("/cgi-bin/measure", b"action=store&macaddress=00:24:e4:06:59:dc&meastime=1700000000&measures=%7Bnope",
     400, "not JSON"),
    ("/cgi-bin/measure", b"action=store&macaddress=00:24:e4:06:59:dc&meastime=1000&measures="
     + quote_plus('{"measures":[{"value":80000,"type":1,"unit":-3}]}').encode(), 200, "before 2008"),
    ("/cgi-bin/session", b"action=new", 400, "missing field 'auth'"),
    ("/cgi-bin/session", b"action=explode", 400, "unknown"),
    ("/cgi-bin/measure", b"x" * (70 * 1024), 400, "larger than"),
])
def test_bad_requests_get_a_non_zero_status_and_store_nothing(
    served: Served, path: str, body: bytes, http_status: int, reason: str
) -> None:
    (response,) = asyncio.run(talk(served.port, (path, body)))
    assert response.status == http_status
    assert response.json()["status"] != 0
    assert measurements(served, "--kind", "all") == []
    # The server is still there, and the refusal is logged with its reason.
    (again,) = asyncio.run(talk(served.port, ("/cgi-bin/once", b"action=get")))
    assert again.json()["status"] == 0
    assert reason in served.kill()


def test_one_bad_group_refuses_the_whole_request(served: Served) -> None:
    now = int(time.time())
    groups = [{"meastime": now - 60, "measures": [{"value": 80000, "type": 1, "unit": -3}]},
              {"meastime": now - 30, "measures": [{"value": 900000, "type": 1, "unit": -3}]}]
    (response,) = asyncio.run(talk(served.port, ("/cgi-bin/measure", scale.ws50_store_body(SCALE, "s", 1, groups))))
    assert response.json()["status"] != 0
    assert measurements(served) == []


def test_get_on_a_scale_endpoint_is_refused(served: Served) -> None:
    received, _ = raw_exchange(served.port, b"GET /cgi-bin/measure HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, payload = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and json.loads(payload)["status"] != 0


def test_unknown_and_undocumented_endpoints_answer_status_0_and_are_logged(served: Served) -> None:
    maint, weather, unknown = asyncio.run(talk(
        served.port,
        ("/cgi-bin/maint", b"action=store&foo=bar"),
        ("/cgi-bin/v2/weather", b"action=get"),
        ("/cgi-bin/firmware-2031", b"action=hello&secretish=1&hash=deadbeef"),
    ))
    assert maint.json() == {"status": 0}
    assert weather.json() == {"status": 0, "body": {"series": []}}
    assert unknown.json() == {"status": 0}
    log = served.kill()
    assert "unknown endpoint POST /cgi-bin/firmware-2031" in log and "fields action=hello&" in log
    assert "deadbeef" not in log


def test_acknowledged_weigh_ins_survive_sigkill(served: Served) -> None:
    """Every weigh-in the scale got status 0 for is in the journal, even if the server dies right after."""
    now = int(time.time())
    for offset in range(5):
        conversation = asyncio.run(scale.weigh_in("127.0.0.1", served.port, scale=SCALE, meastime=now - 1000 + offset,
                                                  weight_g=70000 + offset))
        assert conversation.response(2).json()["status"] == 0
    served.kill(signal.SIGKILL)
    assert len(measurements(served)) == 5
    restarted = start_server(served.config_path, served.data_dir)
    try:
        asyncio.run(scale.weigh_in("127.0.0.1", restarted.port, scale=SCALE, meastime=now - 1, weight_g=71000))
        assert len(measurements(restarted)) == 6
    finally:
        restarted.kill()


def test_the_raw_request_log_keeps_bodies_with_the_hash_masked(served: Served) -> None:
    import sqlite3
    asyncio.run(scale.weigh_in("127.0.0.1", served.port, scale=SCALE, meastime=int(time.time()) - 5, weight_g=1))
    served.kill()
    rows = sqlite3.connect(served.data_dir / "requests.sqlite").execute(
        "SELECT path, outcome, body FROM requests ORDER BY id").fetchall()
    assert [row[0] for row in rows] == ["/cgi-bin/once", "/cgi-bin/session", "/cgi-bin/measure", "/cgi-bin/session"]
    session_body = rows[1][2]
    assert b"hash=<masked>" in session_body and b"0123456789abcdef" not in session_body
    assert b"auth=00:24:e4:06:59:dc" in session_body


def test_the_ws50_environment_body_alone_belongs_to_the_scale_that_opened_a_session(served: Served) -> None:
    """ScaleWS logged the real v2/measure body as `measuregrps` only: no MAC, no session id. It is the
    scale that opened the latest session from the same address."""
    now = int(time.time())
    body = first_line("2013-ws50-v2-measure-request-body.txt").replace(b"1387053012", str(now - 60).encode())
    (refused,) = asyncio.run(talk(served.port, ("/cgi-bin/v2/measure", body)))
    assert refused.json()["status"] != 0  # no session yet: nobody to attribute it to
    _, stored = asyncio.run(talk(served.port, ("/cgi-bin/session", scale.session_new_body(SCALE)),
                                 ("/cgi-bin/v2/measure", body)))
    assert stored.json() == {"status": 0}
    (environment,) = measurements(served, "--kind", "environment")
    assert environment["device_id"] == SCALE.mac and environment["readings"]["co2_ppm"] == 655
