"""`interceptor import zepp` against the stand-in: both sign-ins, the warning first, family members,
every page once, the token reused, and a sentence for each refusal."""

from __future__ import annotations

import json
import stat

from tests.importers.conftest import Household
from tests.importers.histories import MI2_MAC
from tests.importers.test_xiaomi_import import measurements, summary_of

WARNING = "signing in here signs the Zepp Life app on your phone out"


def test_xiaomi_account_sign_in_then_the_kept_token(household: Household) -> None:
    cloud = household.cloud
    done = household.cli("import", "zepp", "--xiaomi-account", cloud.user, input=f"y\n{cloud.password}\n")
    assert done.returncode == 0, done.stderr
    assert WARNING in done.stderr
    assert summary_of(done.stdout, "Zepp Life") == [
        "Zepp Life (account 7001): 9 new, 0 merged into stored weigh-ins, 0 unchanged, 1 skipped",
        "  skipped member -1 record 1: weightType 3: not a plain weigh-in (Zepp's weights there are unreliable)"]
    stored = measurements(household)
    assert {(item["source"], item["device_id"]) for item in stored} == {("zepp", MI2_MAC)}
    assert sorted(item["user"] for item in stored) == ["fed"] * 4 + ["fra"] * 5  # Fred by name, the owner's
    first = min(stored, key=lambda item: item["taken_at"])
    assert first["readings"] == {"weight_kg": 64.7, "impedance_ohm": 450.0} and first["user"] == "fra"
    assert first["metrics"]["muscle_mass_kg"]["method"] == "vendor"
    assert "body_fat_pct" in first["metrics"]
    session_path = household.data_dir / "zepp-session.json"
    assert stat.S_IMODE(session_path.stat().st_mode) == 0o600
    token = json.loads(session_path.read_text())["app_token"]
    assert token not in done.stdout + done.stderr and cloud.password not in done.stderr

    again = household.cli("import", "zepp")  # no sign-in, no warning: the kept token
    assert again.returncode == 0, again.stderr
    assert WARNING not in again.stderr and "9 unchanged" in again.stdout and cloud.zepp_logins == 1
    assert len(measurements(household)) == 9

    cloud.expire_zepp()
    expired = household.cli("import", "zepp")
    assert expired.returncode == 1
    assert "Zepp no longer accepts the saved sign-in (HTTP 401): sign in again" in expired.stderr
    assert cloud.violations == []


def test_zepp_account_declined_and_refused(household: Household) -> None:
    cloud = household.cloud
    declined = household.cli("import", "zepp", "--zepp-account", cloud.zepp_email, input="n\n")
    assert declined.returncode == 1 and "not signed in to Zepp: nothing was imported" in declined.stderr
    refused = household.cli("import", "zepp", "--zepp-account", cloud.zepp_email, "--yes", input="wrong\n")
    assert refused.returncode == 1 and "Zepp did not accept this e-mail and password" in refused.stderr
    done = household.cli("import", "zepp", "--zepp-account", cloud.zepp_email, "--yes", "--dry-run",
                         input=f"{cloud.zepp_password}\n")
    assert done.returncode == 0, done.stderr
    assert "9 would be new" in done.stdout and "dry run: nothing was written" in done.stderr
    assert not (household.data_dir / "journal.sqlite").exists()
    later = household.cli("import", "zepp", "--since", "2022-04-18")
    assert later.returncode == 0, later.stderr  # the token the dry run kept
    assert "Zepp Life (account 7001): 3 new, 0 merged into stored weigh-ins, 0 unchanged, 1 skipped" \
        in later.stdout  # two of the owner's, one of Fred's, and the broken one
    assert cloud.violations == []
