"""`interceptor xiaomi login|logout|devices` against the stand-in cloud, as a person runs them."""

from __future__ import annotations

import json
import stat

import pytest

from tests.importers.conftest import Household
from tests.importers.histories import S200_KEY, S400_KEY
from tests.importers.standin import CAPTCHA_TEXT, MASKED_EMAIL, TWO_FACTOR_CODE


def secrets_of(household: Household) -> list[str]:
    cloud = household.cloud
    tokens = [token for by_sid in cloud.tokens.values() for token in by_sid]
    return [cloud.password, cloud.pass_token, *tokens]


def test_password_captcha_and_two_factor_give_a_private_session(household: Household) -> None:
    cloud = household.cloud
    cloud.captchas, cloud.two_factor = 1, True
    done = household.cli("xiaomi", "login", "--region", "de", "--user", cloud.user,
                         input=f"{cloud.password}\n{CAPTCHA_TEXT}\n{TWO_FACTOR_CODE}\n")
    assert done.returncode == 0, done.stderr
    captcha = household.data_dir / "xiaomi-captcha.png"
    assert f"open {captcha} and type" in done.stderr and not captcha.exists()  # shown, then removed
    assert f"sent a verification code to {MASKED_EMAIL}" in done.stderr
    assert "2 Bluetooth scale(s) on this account" in done.stderr
    session_path = household.data_dir / "xiaomi-session.json"
    assert stat.S_IMODE(session_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(household.data_dir.stat().st_mode) == 0o700
    session = json.loads(session_path.read_text())
    assert (session["user_id"], session["region"], session["pass_token"]) == (cloud.user_id, "de", cloud.pass_token)
    assert session["services"]["xiaomiio"]["service_token"] in cloud.tokens["xiaomiio"]  # via extension-pragma
    checked = household.cli("config", "check")
    assert checked.returncode == 0 and '"members"' in checked.stdout
    for secret in secrets_of(household):
        assert secret not in done.stdout + done.stderr + checked.stdout + checked.stderr
    assert cloud.violations == []


@pytest.mark.parametrize(("setup", "typed", "expected"), [
    ({}, "wrong password\n", "did not accept the user name and password (code 70016)"),
    ({"captchas": 10}, "{password}\n" + f"{CAPTCHA_TEXT}\n" * 4, "a captcha loop"),
    ({"two_factor": True}, "{password}\n000000\n", "'system error' (code 10001)"),
])
def test_sign_in_failures_say_what_to_do(household: Household, setup: dict, typed: str, expected: str) -> None:
    cloud = household.cloud
    for name, value in setup.items():
        setattr(cloud, name, value)
    done = household.cli("xiaomi", "login", "--region", "de", "--user", cloud.user,
                         input=typed.format(password=cloud.password))
    assert done.returncode == 1
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("interceptor: ") and expected in message, done.stderr
    assert "Traceback" not in done.stderr and cloud.password not in done.stderr
    assert not (household.data_dir / "xiaomi-session.json").exists()
    assert cloud.violations == []


def test_a_session_others_can_read_is_used_with_one_warning_naming_the_chmod(household: Household) -> None:
    household.login()
    session_path = household.data_dir / "xiaomi-session.json"
    session_path.chmod(0o644)  # as a copy or a restored backup may leave it
    listed = household.cli("xiaomi", "devices")
    assert listed.returncode == 0, listed.stderr
    assert "8C:D0:B2:F6:BE:EF" in listed.stdout
    assert listed.stderr.count(f"run `chmod 600 {session_path}`") == 1, listed.stderr
    assert f"{session_path} is mode 0644" in listed.stderr
    session_path.chmod(0o600)
    private = household.cli("xiaomi", "devices")
    assert private.returncode == 0 and "chmod" not in private.stderr, private.stderr


def test_the_wrong_region_is_named_with_the_right_one(household: Household) -> None:
    done = household.cli("xiaomi", "login", "--region", "us", "--user", household.cloud.user,
                         input=household.cloud.password + "\n")
    assert done.returncode == 0, done.stderr
    assert "no Bluetooth scale in region 'us', but region 'de' has 2: run `interceptor xiaomi login --region de`" \
        in done.stderr
    devices = household.cli("xiaomi", "devices")
    assert devices.returncode == 1 and "run `interceptor xiaomi login --region de`" in devices.stderr


def test_pass_token_sign_in_reuse_and_renewal_without_asking(household: Household) -> None:
    cloud = household.cloud
    done = household.cli("xiaomi", "login", "--region", "de", "--pass-token", f"{cloud.user_id}:{cloud.pass_token}")
    assert done.returncode == 0, done.stderr
    listed = household.cli("xiaomi", "devices", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert [(item["mac"], item["bind_key"]) for item in json.loads(listed.stdout)] == [
        ("8C:D0:B2:F6:BE:EF", S400_KEY), ("D0:7B:6F:27:D7:29", S200_KEY)]  # the S200's key came upper case
    assert cloud.renewals == ["xiaomiio"]  # the sign-in itself; the listing reused its service token
    cloud.expire("xiaomiio")
    again = household.cli("xiaomi", "devices", input="")  # nothing to type: the pass token renews it
    assert again.returncode == 0, again.stderr
    assert "8C:D0:B2:F6:BE:EF" in again.stdout and S400_KEY in again.stdout
    assert cloud.renewals == ["xiaomiio", "xiaomiio"]
    session = json.loads((household.data_dir / "xiaomi-session.json").read_text())
    assert not cloud.tokens["xiaomiio"][session["services"]["xiaomiio"]["service_token"]].expired
    cloud.pass_token = "V1:changed-after-a-password-change"
    cloud.expire("xiaomiio")
    expired = household.cli("xiaomi", "devices")
    assert expired.returncode == 1
    assert "your saved Xiaomi sign-in is no longer accepted" in expired.stderr
    assert "run `interceptor xiaomi login` again" in expired.stderr
    assert cloud.violations == []


def test_without_a_session_and_after_logout(household: Household) -> None:
    missing = household.cli("xiaomi", "devices")
    assert missing.returncode == 1
    assert "not signed in to Xiaomi: run `interceptor xiaomi login` first" in missing.stderr
    household.login()
    out = household.cli("xiaomi", "logout")
    assert out.returncode == 0 and "signed out of Xiaomi" in out.stderr
    assert not (household.data_dir / "xiaomi-session.json").exists()
    assert "not signed in" in household.cli("import", "xiaomi").stderr
    bad = household.cli("xiaomi", "login", "--region", "de", "--pass-token", "no-colon")
    assert bad.returncode == 1 and "--pass-token takes USERID:PASSTOKEN" in bad.stderr
