"""A real `interceptor serve` pushing the weigh-ins of the person in `[garmin] users` to the stand-in
Garmin servers: weigh-ins from the Withings scale stand-in, the reason a push waits shown on the
health page and by `doctor`, and nothing sent twice across a restart or by a later `export garmin`."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

from pytest import approx

from interceptor.config import load_config
from interceptor.doctor import check_garmin, check_journal
from interceptor.garmin.sink import sink_name
from interceptor.store.journal import Backlog, reader_of
from interceptor.users import withings_user_id
from interceptor.withings import scale
from tests.conftest import start_server, wait_until
from tests.garmin.conftest import Household

FRED = 2507298  # the scale's id for Fred (HOUSEHOLD_TOML)
OPTED_IN = '\n[garmin]\nusers = ["fra"]\n'


def weigh(port: int, meastime: int, weight_kg: float, userid: int) -> None:
    conversation = asyncio.run(scale.weigh_in("127.0.0.1", port, userid=userid, meastime=meastime,
                                              weight_g=round(weight_kg * 1000)))
    assert conversation.response(2).json()["status"] == 0


def weights(household: Household) -> list[list[float]]:
    return [[message["weight"] for message in upload.messages] for upload in household.garmin.uploads]


def test_serve_pushes_the_opted_in_persons_new_weigh_ins_once(household: Household) -> None:
    household.config_path.write_text(household.config_path.read_text() + OPTED_IN)
    settings = load_config(household.config_path, environ={}, overrides={"data_dir": str(household.data_dir)})
    franziska = withings_user_id(settings.users[1])
    now = int(time.time())

    def backlog() -> Backlog:
        with reader_of(household.data_dir / "journal.sqlite") as reader:
            return reader.backlog(sink_name("fra"))

    served = start_server(household.config_path, household.data_dir, env=household.env())
    try:
        weigh(served.port, now - 300, 61.0, franziska)  # before she signed in: it waits, with the reason
        weigh(served.port, now - 240, 86.1, FRED)  # Fred did not opt in
        wait_until(lambda: backlog().last_error is not None, what="the reason on the outbox")
        reason = ("Garmin Connect for fra: fra is not signed in to Garmin Connect on this box: "
                  "run `interceptor garmin login --user fra`")
        assert backlog().last_error == reason and backlog().items == 1
        with urllib.request.urlopen(f"{served.web_url}/api/v1/health", timeout=10) as answer:
            outbox = {item["sink"]: item for item in json.load(answer)["outbox"]}
        assert outbox["garmin:fra"]["items"] == 1 and outbox["garmin:fra"]["last_error"] == reason
        doctor = [check_journal(settings).line(), check_garmin(settings).line()]
        assert f"1 item(s) waiting for Garmin Connect (fra) (last error: {reason})" in doctor[0]
        assert doctor[1] == "FAIL  garmin connect: fra is not signed in to Garmin Connect on this box: " \
                            "run `interceptor garmin login --user fra`"
        login = household.login()
        wait_until(lambda: len(household.garmin.uploads) == 1, timeout=20, what="the retry after the sign-in")
        wait_until(lambda: backlog().items == 0, what="the outbox emptied")
    finally:
        first_log = served.kill()
    assert weights(household) == [[approx(61.0)]]
    assert first_log.count("is not signed in to Garmin Connect") == 1, first_log  # one line, not one per retry
    assert "sent 1 weigh-in(s) of fra to Garmin Connect" in first_log
    signed_in = "ok    garmin connect: signed in for fra; new weigh-ins are uploaded by serve"
    assert check_garmin(settings).line() == signed_in

    served = start_server(household.config_path, household.data_dir, env=household.env())
    try:
        weigh(served.port, now - 60, 60.8, franziska)
        wait_until(lambda: len(household.garmin.uploads) == 2, what="the new weigh-in")
        time.sleep(0.5)  # anything sent twice would arrive now
    finally:
        second_log = served.kill()
    assert weights(household) == [[approx(61.0)], [approx(60.8)]]
    exported = household.cli("export", "garmin", "--user", "fra")
    assert exported.returncode == 0, exported.stderr
    assert "sent 0 weigh-in(s)" in exported.stderr and "2 weigh-in(s) were sent before" in exported.stderr
    assert len(household.garmin.uploads) == 2
    assert "Traceback" not in first_log + second_log
    household.outputs_hold_no_secret(login, exported)
    for secret in household.garmin.secrets:
        assert secret not in first_log + second_log
    household.nothing_left_loopback()
