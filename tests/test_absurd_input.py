"""Issue 11, items 2 and 7, reproduced against a real `interceptor serve` on loopback: absurd values,
numbers no float holds and documents nested without end get a clear refusal, never a 500 or a
traceback, and the journal (measurements and outbox) is exactly what it was before."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote_plus

import pytest

from interceptor.ble.frames import Frame
from interceptor.ble.routes import FRAMES_PATH
from interceptor.withings import scale
from interceptor.withings.scale import ScaleIdentity
from tests.ble.conftest import TOKEN, ble_toml
from tests.ble.streams import MI1_MAC, s400_weigh_in
from tests.conftest import Served, free_port, run_cli, start_server
from tests.withings.samples import first_line
from tests.withings.test_conversation import talk

SCALE = ScaleIdentity()


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Served]:
    """`serve` with the test household, a BLE gateway token and an InfluxDB sink that is down (a closed
    loopback port), so every weigh-in stays in the outbox where the test can read what it holds."""
    config = tmp_path / "interceptor.toml"
    config.write_text(ble_toml() + f'\n[influx]\nurl = "http://127.0.0.1:{free_port()}"\n', encoding="utf-8")
    server = start_server(config, tmp_path / "data")
    yield server
    server.kill()


def journal(served: Served) -> list[tuple]:
    """Every stored measurement and every outbox item, as the journal holds them."""
    with sqlite3.connect(f"file:{served.data_dir / 'journal.sqlite'}?mode=ro", uri=True) as db:
        return [*db.execute("SELECT * FROM measurements ORDER BY id"),
                *db.execute("SELECT id, sink, item, item_id, payload FROM outbox ORDER BY id")]


def frames_kept(served: Served) -> int:
    with sqlite3.connect(f"file:{served.data_dir / 'ble-frames.sqlite'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM frames").fetchone()[0])


def post_frames(served: Served, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{served.port}{FRAMES_PATH}", data=body, method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def batch(*frames: Frame) -> bytes:
    return json.dumps({"frames": [frame.to_json() for frame in frames]}).encode()


def mi_scale(mac: str, at: float, weight_raw: int) -> Frame:
    """A Mi Scale (V1) stabilized frame with its clock unset (1970), so the receiver's time is the
    weigh-in's (ble-scales.md §1.4); `weight_raw` is kg × 200."""
    data = bytes([0x22]) + weight_raw.to_bytes(2, "little") + bytes.fromhex("b20701010a1a15")
    return Frame(time=at, mac=mac, address_type="public", rssi=-70, service_data={"181d": data},
                 manufacturer_data={0x0157: bytes.fromhex(mac.replace(":", ""))})


def store(groups: list[dict]) -> tuple[str, bytes]:
    return "/cgi-bin/measure", scale.ws50_store_body(SCALE, "s", 1, groups)


def weigh_in(*measures: dict, meastime: int | None = None) -> tuple[str, bytes]:
    return store([{"meastime": meastime or int(time.time()) - 60, "measures": list(measures)}])


def raw_store(measures_json: str) -> tuple[str, bytes]:
    body = f"action=store&sessionid=s&macaddress={SCALE.mac}&userid=1&measuregrps={quote_plus(measures_json)}"
    return "/cgi-bin/measure", body.encode()


def environment(mantissa: float, exponent: int, measure_type: int) -> tuple[str, bytes]:
    """The captured WS-50 v2/measure body (reference §1.5) with one value replaced."""
    now = int(time.time()) - 60
    document = [{"meastime": now, "measures": [{"data": {"mantissa": mantissa, "exponent": exponent, "unit": 11},
                                                "type": measure_type}]}]
    assert first_line("2013-ws50-v2-measure-request-body.txt").startswith(b"measuregrps=[{")  # the shape kept
    return "/cgi-bin/v2/measure", f"macaddress={SCALE.mac}&measuregrps={quote_plus(json.dumps(document))}".encode()


WEIGHT = {"value": 80000, "type": 1, "unit": -3}
FIVE_THOUSAND_DIGITS = "1" + "0" * 4999
WITHINGS_ATTACKS = [
    # (request, HTTP status, what the log says)
    (weigh_in({"value": 1, "type": 1, "unit": -3}), 200, "weight_kg 0.001 is below 2 kg"),
    (weigh_in(WEIGHT, {"value": 1e300, "type": 6, "unit": 0}), 200, "the vendor's body_fat_pct 1e+300 is above 75 %"),
    (weigh_in(WEIGHT, {"value": -500, "type": 6, "unit": 0}), 200, "the vendor's body_fat_pct -500 is below 1 %"),
    (weigh_in({"value": 120, "type": 11, "unit": 0}, meastime=int(datetime(2099, 6, 1, tzinfo=UTC).timestamp())),
     200, "taken_at 2099-06-01T00:00:00Z is after"),
    (weigh_in(WEIGHT, meastime=int(time.time()) + 30 * 86400), 200, "more than a day ahead of this server's clock"),
    (weigh_in(WEIGHT, {"value": 12, "type": 1e300, "unit": 0}), 400,
     "type an integer of 301 digits is outside 0..32767"),
    (weigh_in(WEIGHT, {"value": 1e300, "type": 16, "unit": 12}), 400,
     "1e+300 × 10^12 is too large to be a measurement"),
    (raw_store('[{"meastime": 1700000000, "measures": [{"value": ' + FIVE_THOUSAND_DIGITS + ', "type": 1}]}]'),
     400, "an integer has more than 4300 digits"),
    (raw_store('[{"meastime": 1700000000, "measures": [{"value": NaN, "type": 1, "unit": -3}]}]'), 400,
     "value is not finite"),
    (raw_store('[{"meastime": 1700000000, "measures": [{"value": Infinity, "type": 1, "unit": -3}]}]'), 400,
     "value is not finite"),
    (environment(-1e300, 0, 12), 200, "temperature_c -1e+300 is below -40 °C"),
    (environment(-5, 0, 35), 200, "co2_ppm -5 is below 0 ppm"),
    (raw_store("[" * 15_000), 400, "field 'measuregrps' is nested deeper than 32 levels"),
]


def test_absurd_withings_requests_are_refused_and_leave_the_journal_as_it_was(guarded: Served) -> None:
    conversation = asyncio.run(scale.weigh_in("127.0.0.1", guarded.port, scale=SCALE,
                                              meastime=int(time.time()) - 3600, weight_g=80000))
    assert conversation.response(2).json()["status"] == 0
    before = journal(guarded)
    assert len(before) == 3  # the weigh-in, and its body and device points waiting in the outbox
    responses = asyncio.run(talk(guarded.port, *(request for request, _, _ in WITHINGS_ATTACKS)))
    for response, (request, http_status, _) in zip(responses, WITHINGS_ATTACKS, strict=True):
        assert (response.status, response.json()["status"] != 0) == (http_status, True), request[1][:200]
    assert journal(guarded) == before
    log = guarded.kill()
    with sqlite3.connect(f"file:{guarded.data_dir / 'requests.sqlite'}?mode=ro", uri=True) as db:
        details = [row[0] for row in db.execute("SELECT detail FROM requests WHERE outcome = 'refused'")]
    for _, _, reason in WITHINGS_ATTACKS:  # every refusal, with its reason, is in the request log
        assert any(reason in detail for detail in details), reason
    # The server log has the first few refusals from one address in full and counts the rest.
    assert WITHINGS_ATTACKS[0][2] in log
    assert f"{len(WITHINGS_ATTACKS) - 5} more refused, rate-limited, timed-out or unexpected HTTP requests" in log
    assert "Traceback" not in log and "failed POST" not in log


def test_implausible_ble_weigh_ins_are_dropped_with_a_bounded_warning_and_their_frames_kept(guarded: Served) -> None:
    now = time.time()
    # One good S400 weigh-in and two Mi Scale weigh-ins from a receiver whose clock says 1970.
    status, accepted = post_frames(guarded, batch(*s400_weigh_in(), mi_scale(MI1_MAC, 86_400, 14_000),
                                                  mi_scale(MI1_MAC, 2 * 86_400, 14_200)))
    assert status == 200 and len(accepted["measurements"]) == 1
    before = journal(guarded)
    attacks = [
        batch(mi_scale("C8:47:8C:00:00:01", now - 60, 1)),  # 0.005 kg
        batch(mi_scale("C8:47:8C:00:00:02", now + 30 * 86_400, 14_400)),  # the receiver's clock a month ahead
        batch(mi_scale("C8:47:8C:00:00:03", datetime(2099, 6, 1, tzinfo=UTC).timestamp(), 14_600)),
    ]
    for body in attacks:
        status, accepted = post_frames(guarded, body)
        assert status == 200 and accepted["measurements"] == [] and accepted["new_frames"] == 1, accepted
    assert journal(guarded) == before
    assert frames_kept(guarded) == 8 + 2 + len(attacks)  # nothing heard is thrown away
    log = guarded.kill()
    warnings = [line for line in log.splitlines() if "ble: dropped the weigh-in" in line]
    assert len(warnings) == 4, warnings  # the two 1970 weigh-ins of one scale are one warning
    for reason in ("C8:47:8C:C0:95:89 at 1970-01-02T00:00:00Z: taken_at 1970-01-02T00:00:00Z is before 2008-01-01",
                   "weight_kg 0.005 is below 2 kg",
                   "more than a day ahead of this server's clock", "taken_at 2099-06-01T00:00:00Z is after"):
        assert any(reason in line for line in warnings), reason
    assert all(len(line) < 400 for line in warnings)
    assert "Traceback" not in log


def test_nested_documents_get_a_refusal_naming_the_limit(guarded: Served) -> None:
    before = journal(guarded)
    status, answer = post_frames(guarded, b"{\"frames\": " + b"[" * 30_000)
    assert status == 422
    assert answer["error"] == ("body is nested deeper than 32 levels (arrays, tables or objects within each "
                               "other); a batch of frames needs 4")
    status, _ = post_frames(guarded, b'{"frames": [{"time": "2026-01-01T00:00:00Z", "mac": "AA:BB:CC:DD:EE:FF", '
                                     b'"rssi": ' + FIVE_THOUSAND_DIGITS.encode() + b"}]}")
    assert status == 422
    # The config file the BLE service watches, rewritten nested: refused, the previous settings stay.
    guarded.config_path.write_text(ble_toml() + "\nx = " + "[" * 50_000 + "\n", encoding="utf-8")
    status, accepted = post_frames(guarded, batch(*s400_weigh_in()))
    assert status == 200 and len(accepted["measurements"]) == 1
    assert len(journal(guarded)) == len(before) + 2
    log = guarded.kill()
    assert f"{guarded.config_path} is nested deeper than 32 levels" in log
    assert "keeping the previous [ble] settings" in log
    assert "Traceback" not in log


def test_nested_environment_and_config_file_exit_2_naming_the_variable_or_file(tmp_path: Path,
                                                                                config_path: Path) -> None:
    deep_env = {**os.environ, "INTERCEPTOR_HOUSEHOLD": "[" * 50_000}
    result = run_cli("config", "check", "--config", str(config_path), env=deep_env)
    assert result.returncode == 2
    assert "INTERCEPTOR_HOUSEHOLD is nested deeper than 32 levels" in result.stderr
    nested = tmp_path / "nested.toml"
    for text in ("x = " + "[" * 50_000, ".".join(["a"] * 50_000) + " = 1", "x = 1" + "0" * 5000):
        nested.write_text(text, encoding="utf-8")
        result = run_cli("serve", "--no-dns", "--config", str(nested), env={**os.environ})
        assert result.returncode == 2, result.stderr
        assert str(nested) in result.stderr and "Traceback" not in result.stderr
        assert "nested deeper than 32 levels" in result.stderr or "more than 4300 digits" in result.stderr
