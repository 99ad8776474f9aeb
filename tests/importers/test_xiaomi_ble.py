"""From a new S400 to decoded weigh-ins and imported history, with a real `interceptor serve` running:
frames without a key are kept and point to `xiaomi devices --write-config`; after it, the same frames
decode without a restart; the cloud's copy of that weigh-in merges into it; a re-run adds nothing."""

from __future__ import annotations

import json
import stat
import time
import urllib.request
from typing import Any

from tests.ble.streams import s400_weigh_in
from tests.conftest import start_server
from tests.importers.conftest import GATEWAY_TOKEN, Household
from tests.importers.histories import S400_KEY, S400_MAC, S400_TIME
from tests.importers.test_xiaomi_import import measurements, summary_of


def post_frames(port: int, frames: list[Any]) -> dict[str, Any]:
    """As the gateway sends them: a JSON batch with the bearer token."""
    body = json.dumps({"frames": [frame.to_json() for frame in frames]}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/ble/frames", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {GATEWAY_TOKEN}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def wait_for(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise TimeoutError("the server did not store the weigh-in in time")


def test_new_s400_to_decoded_weigh_ins_and_imported_history(household: Household) -> None:
    household.config_path.chmod(0o640)
    server = start_server(household.config_path, household.data_dir)
    try:
        before = post_frames(server.port, s400_weigh_in(S400_TIME + 1))
        assert before["scale_frames"] == 8 and before["measurements"] == []

        household.login()
        original = household.config_path.read_text().splitlines()
        written = household.cli("xiaomi", "devices", "--write-config")
        assert written.returncode == 0, written.stderr
        assert f"{household.config_path}: {S400_MAC}: added" in written.stderr
        assert "no restart needed" in written.stderr
        text = household.config_path.read_text()
        lines = iter(text.splitlines())
        assert all(line in lines for line in original)  # every line, comments too, still there in order
        assert '[ble.devices."8C:D0:B2:F6:BE:EF"]' in text and S400_KEY in text
        assert stat.S_IMODE(household.config_path.stat().st_mode) == 0o640

        # The server reloads [ble] on its next tick and re-reads the frames it kept.
        stored = wait_for(lambda: [item for item in measurements(household) if item["device_id"] == S400_MAC])
        assert len(stored) == 1
        assert stored[0]["readings"] == {"weight_kg": 69.9, "heart_rate_bpm": 92.0, "impedance_low_ohm": 543.2,
                                         "impedance_high_ohm": 497.6}
        assert stored[0]["source"] == "ble" and stored[0]["taken_at"] == "2025-04-10T02:03:25Z"

        dry = household.cli("import", "xiaomi", "--dry-run")
        assert "43 would be new, 1 would be merged into stored weigh-ins" in dry.stdout, dry.stdout
        imported = household.cli("import", "xiaomi")
        assert imported.returncode == 0, imported.stderr
        line = summary_of(imported.stdout, "Xiaomi Home (yunmai.scales.ms104)")[0]
        assert line == "Xiaomi Home (yunmai.scales.ms104): 43 new, 1 merged into stored weigh-ins, 0 unchanged, " \
                       "2 skipped"
        merged = next(item for item in measurements(household) if item["id"] == stored[0]["id"])
        assert merged["readings"] == stored[0]["readings"]  # what the scale said live wins
        assert merged["metrics"]["body_score"] == {"value": 88.0, "unit": "", "method": "vendor",
                                                   "confidence": "vendor"}
        assert len(measurements(household)) == 44

        again = household.cli("import", "xiaomi")
        assert "0 new, 0 merged into stored weigh-ins, 44 unchanged" in again.stdout
        assert len(measurements(household)) == 44
    finally:
        log = server.kill()
    assert "no bind key for 8C:D0:B2:F6:BE:EF" in log and "run `interceptor xiaomi devices --write-config`" in log
    assert "bind keys changed, re-reading kept frames" in log
    assert S400_KEY not in log and "Traceback" not in log
    assert household.cloud.violations == []
