"""`interceptor garmin login` and `interceptor export garmin`, run as a person runs them, against the
stand-in Garmin servers: the real garminconnect library signs in (MFA typed on standard input),
refreshes its token and uploads; the stand-in decodes every uploaded FIT file with fitdecode."""

from __future__ import annotations

import json
import stat

import pytest
from pytest import approx

from interceptor.garmin.library import checkout
from tests.garmin.conftest import Household
from tests.garmin.standin import DISPLAY_NAME, MFA_CODE

IMPORTED_WEIGHTS = [60.2, 60.0, 59.9]  # tests/fixtures/imports/openscale.csv


def last_line(run: object) -> str:
    return run.stderr.strip().splitlines()[-1]  # type: ignore[attr-defined]


def test_without_the_extra_each_command_names_the_pip_command(household: Household) -> None:
    household.import_history()
    expected = (f"interceptor: Garmin Connect upload needs the optional `garmin` extra: run "
                f"`.venv/bin/pip install -e '.[garmin]'` in {checkout()}")
    for args in (("garmin", "login", "--user", "fra"), ("export", "garmin", "--user", "fra")):
        done = household.cli(*args, GARMIN_TEST_WITHOUT="garminconnect")
        assert done.returncode == 1 and done.stderr.strip() == expected, done.stderr
    assert (checkout() / "pyproject.toml").is_file()
    assert household.garmin.requests == []


def test_login_with_the_code_typed_on_stdin_keeps_the_tokens_private(household: Household) -> None:
    done = household.login()
    garmin = household.garmin
    assert "Garmin sent a verification code" in done.stderr
    assert f"signed in to Garmin Connect as {DISPLAY_NAME} for fra" in done.stderr
    assert garmin.requests == ["sso.garmin.com POST /mobile/api/login",
                               "sso.garmin.com POST /mobile/api/mfa/verifyCode",
                               "diauth.garmin.com POST /di-oauth2-service/oauth/token",
                               "connectapi.garmin.com GET /userprofile-service/socialProfile"]
    kept = household.data_dir / "garmin" / "fra.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
    state = json.loads(json.loads(kept.read_text())["state"])
    assert state["di_token"] in garmin.access_tokens and state["di_refresh_token"] in garmin.refresh_tokens
    checked = household.cli("config", "check")
    household.outputs_hold_no_secret(done, checked)
    household.nothing_left_loopback()
    assert set(garmin.connects) <= {"sso.garmin.com:443", "diauth.garmin.com:443", "connectapi.garmin.com:443"}


@pytest.mark.parametrize(("typed", "expected"), [
    ("{email}\nnot the password\n", "Garmin did not accept the e-mail and password (401): check them at "
                                    "https://connect.garmin.com and run the login again"),
    ("{email}\n{password}\n000000\n", "Garmin did not accept the verification code: run the login again and type "
                                      "the newest code Garmin sent"),
])
def test_a_refused_login_is_one_line_and_keeps_nothing(household: Household, typed: str, expected: str) -> None:
    garmin = household.garmin
    done = household.cli("garmin", "login", "--user", "fra",
                         input=typed.format(email=garmin.email, password=garmin.password))
    assert done.returncode == 1 and last_line(done) == f"interceptor: {expected}", done.stderr
    assert "Traceback" not in done.stderr
    assert not (household.data_dir / "garmin" / "fra.json").exists()
    household.outputs_hold_no_secret(done)
    household.nothing_left_loopback()


def test_each_weigh_in_goes_once_across_runs_and_a_changed_one_is_not_sent_again(household: Household) -> None:
    household.import_history()
    garmin = household.garmin
    not_yet = household.cli("export", "garmin", "--user", "fra")
    assert not_yet.returncode == 1
    assert last_line(not_yet) == ("interceptor: fra is not signed in to Garmin Connect on this box: "
                                  "run `interceptor garmin login --user fra`")
    dry = household.cli("export", "garmin", "--user", "fra", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: 3 weigh-in(s) of fra would go to Garmin Connect in 1 file(s); nothing was sent" in dry.stderr
    household.login()
    first = household.cli("export", "garmin", "--user", "fra")
    assert first.returncode == 0, first.stderr
    assert "sent 3 weigh-in(s) of fra to Garmin Connect in 1 file(s)" in first.stderr
    assert len(garmin.uploads) == 1 and garmin.uploads[0].filename.startswith("fra-weight-")
    sent = garmin.uploads[0].messages
    assert sorted(message["weight"] for message in sent) == approx(sorted(IMPORTED_WEIGHTS))
    fat = next(message for message in sent if message["weight"] == approx(60.2))
    assert fat["percent_fat"] == approx(29.5) and fat["visceral_fat_rating"] == 5 and fat["bmi"] == approx(23.2)

    again = household.cli("export", "garmin", "--user", "fra")
    assert again.returncode == 0, again.stderr
    assert "sent 0 weigh-in(s)" in again.stderr and "3 weigh-in(s) were sent before and are not sent again" \
        in again.stderr
    # A new height changes the BMI computed for the weigh-in whose file gave none (the other two keep the
    # file's own BMI): the journal takes the new value, Garmin is not sent the weigh-in twice.
    household.config_path.write_text(household.config_path.read_text().replace("height_cm = 161", "height_cm = 171"))
    recomputed = household.cli("recompute", "--user", "fra")
    assert recomputed.returncode == 0, recomputed.stderr
    listed = json.loads(household.cli("measurements", "list", "--format", "json").stdout)
    weight_only = next(item["id"] for item in listed if item["readings"]["weight_kg"] == approx(59.9))
    changed = household.cli("export", "garmin", "--user", "fra")
    assert changed.returncode == 0, changed.stderr
    assert "2 weigh-in(s) were sent before and are not sent again" in changed.stderr
    assert f"1 weigh-in(s) changed after they were sent (recomputed: {weight_only})" in changed.stderr
    assert "not sent again, since Garmin would keep both the old and the new one" in changed.stderr
    assert len(garmin.uploads) == 1
    household.outputs_hold_no_secret(not_yet, dry, first, again, recomputed, changed)
    household.nothing_left_loopback()


def test_an_expired_token_is_refreshed_by_the_library_and_kept(household: Household) -> None:
    household.import_history()
    household.login()
    kept = household.data_dir / "garmin" / "fra.json"
    before = json.loads(kept.read_text())["state"]
    household.garmin.expire_tokens()
    done = household.cli("export", "garmin", "--user", "fra")
    assert done.returncode == 0, done.stderr
    assert len(household.garmin.uploads) == 1
    after = json.loads(kept.read_text())["state"]
    assert after != before and json.loads(after)["di_token"] in household.garmin.access_tokens
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    household.outputs_hold_no_secret(done)
    household.nothing_left_loopback()


@pytest.mark.parametrize(("status", "expected"), [
    (401, "Garmin no longer accepts fra's sign-in (401): run `interceptor garmin login --user fra`"),
    (403, "Garmin refused the upload (403): uploads from outside its apps are sometimes blocked; the same files "
          "upload by hand on Garmin Connect's Import Data page (the web page's upload menu) "
          "(`interceptor export --format fit --user fra` writes them)"),
    (429, "Garmin is rate limiting this address (429): nothing more is sent now; try again later "
          "(serve retries by itself)"),
])
def test_401_403_429_are_one_line_each_and_nothing_is_remembered_as_sent(
        household: Household, status: int, expected: str) -> None:
    household.import_history()
    household.login()
    household.garmin.upload_status = status
    refused = household.cli("export", "garmin", "--user", "fra")
    assert refused.returncode == 1 and refused.stderr.strip() == f"interceptor: {expected}", refused.stderr
    household.garmin.upload_status = None
    if status == 401:
        household.login()
    retried = household.cli("export", "garmin", "--user", "fra")
    assert retried.returncode == 0 and "sent 3 weigh-in(s)" in retried.stderr, retried.stderr
    household.outputs_hold_no_secret(refused, retried)
    household.nothing_left_loopback()


def test_one_person_per_account(household: Household) -> None:
    done = household.cli("export", "garmin")
    assert done.returncode == 2
    assert last_line(done) == "interceptor: garmin takes one person's weigh-ins: pass --user PERSON"
    nobody = household.cli("garmin", "login", "--user", "zed", input=f"x\ny\n{MFA_CODE}\n")
    assert nobody.returncode == 2 and "--user 'zed' is not in the household (fed, fra)" in nobody.stderr
