"""What the stand-in cloud holds for the tests: an account's devices and weigh-in histories.

Record shapes and field names are the reference's (cloud-and-formats.md §1.2–1.3, §2; the V4 record
of cloud-vectors.md verbatim); the numbers are made up. The S400 is the one of BLE vector S400-XB-1
(tests/ble/vectors.json), so its frames decode with the bind key the cloud hands out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.importers.standin import Cloud

VECTORS = json.loads((Path(__file__).parent / "vectors.json").read_text(encoding="utf-8"))
V4_RECORD = json.loads(VECTORS["responses"][0]["plain"])["result"][0]

S400_MAC = "8C:D0:B2:F6:BE:EF"
S400_DID = "blt.3.abc"  # the V4 record's did
S400_MODEL = "yunmai.scales.ms104"
S400_KEY = "0728974d657a4b60964c1b1677f35f7c"  # S400-XB-1
S400_TIME = 1744250605  # the S400-XB-1/-2 weigh-in
S200_MAC = "D0:7B:6F:27:D7:29"
S200_KEY = "653b1b10e1cb35e4ac5e60fa45f3bf29"  # S200-XB-1
MI2_MAC = "50:FB:19:1B:B5:DC"
DAY_MS = 86_400_000
FILLER_START_MS = 1_746_000_000_000  # 2025-04-30
FILLERS = 40


def devices() -> list[dict[str, Any]]:
    """Two Bluetooth scales, a Bluetooth thermometer and a Wi-Fi plug (device_list_page `list`)."""
    return [
        {"did": S400_DID, "name": "Bathroom scale", "model": S400_MODEL, "mac": S400_MAC.lower(), "pid": 6,
         "isOnline": True, "extra": {"fw_version": "2.1.0_0042"}},
        {"did": "blt.3.s200", "name": "Guest scale", "model": "xiaomi.scales.ms111", "mac": S200_MAC, "pid": 6},
        {"did": "blt.3.thermo", "name": "Bedroom", "model": "miaomiaoce.sensor_ht.t2", "mac": "A4:C1:38:00:00:01",
         "pid": 6},
        {"did": "412345678", "name": "Plug", "model": "cuco.plug.v3", "mac": "78:11:DC:00:00:02", "pid": 0,
         "localip": "192.168.1.20", "token": "0" * 32},
    ]


def home_record(create_ms: int, data: dict[str, Any], *, from_source: int = 1, account: int = 0) -> dict[str, Any]:
    return {"model": S400_MODEL, "uid": 1234567890, "accountId": account, "did": S400_DID, "createTime": create_ms,
            "data": json.dumps(data), "dataVersion": 1, "sn": "", "fromSource": from_source}


def s400_history() -> list[dict[str, Any]]:
    """Alex's V4 weigh-in; the cloud's copy of the S400-XB weigh-in (20 s later than the scale's clock);
    a fromSource 2 record with string values; a fromSource 3 record; a weight typed in by hand; a
    broken record; and 40 days of the owner's weigh-ins, so the history spans three pages."""
    records = [
        V4_RECORD,
        home_record((S400_TIME + 20) * 1000, {"weight": 69.9, "bmi": 17.5, "bfp": 15.2, "bwp": 60.1, "bmc": 3.1,
                                              "heartRate": 92, "bodyRes": 543.2, "bodyRes2": 497.6, "sbc": 88,
                                              "reportFrom": "Regular", "user": {"name": "Alex", "height": 200}}),
        home_record(1_750_000_000_000, {"weight": "58.35", "bmi": "22.5", "bfp": "28.1", "bwp": "51.2",
                                        "vfl": "4", "ma": "38", "heartRate": "0", "bodyRes": "612.5",
                                        "reportFrom": "Claimed", "user": {"name": "Franziska", "height": "161",
                                                                         "deviceId": S400_DID}}, from_source=2),
        home_record(1_752_000_000_000, {"weight": "70.4", "bmi": 17.6, "bodyRes": 540.0, "bodyRes2": 495.5,
                                        "heartRate": 71, "time": "1752000000000", "mid": "x",
                                        "bodyResData": json.dumps({"bfp": "15.9", "slm": "56.3", "smm": "33.9",
                                                                   "smi": "8.1", "bmr": "1790"}),
                                        "user": {"name": "Alex"}}, from_source=3),
        home_record(1_754_000_000_000, {"weight": 71.0, "reportFrom": "UserEditor", "time": 1754000000,
                                        "user": {"name": "Alex"}}),
        {**home_record(1_753_000_000_000, {}), "data": "{not json"},
    ]
    records += [home_record(FILLER_START_MS + day * DAY_MS, {"weight": round(59.0 + day / 100, 2), "bfp": 27.5,
                                                             "reportFrom": "Regular"})
                for day in range(FILLERS)]
    return records


def fitness_history() -> list[dict[str, Any]]:
    """Mi Fitness `data_list` items: weigh-ins (S400 values, as in SmartScaleConnect's README) and a step count."""
    value = {"weight": 74.6, "bmi": 24.1, "body_fat_rate": 21.3, "moisture_rate": 57.0, "bone_mass": 3.1,
             "body_age": 41, "muscle_mass": 55.2, "muscle_rate": 74.0, "protein_rate": 17.1, "basal_metabolism": 1650,
             "body_score": 82, "visceral_fat": 8, "skeletal_muscle_mass": 32.0, "fat_free_body": 58.7,
             "fat_mass": 15.9, "standard_weight": 70.2, "somatotype": 5, "bpm": 66, "time": 0}
    items = [{"sid": S400_DID, "key": "weight", "time": 1_760_000_000 + day * 86_400, "zone_offset": 3600,
              "update_time": 1_760_000_100 + day * 86_400, "zone_name": "Europe/Paris",
              "value": json.dumps({**value, "weight": 74.6 - day / 10, "time": 1_760_000_000 + day * 86_400})}
             for day in range(6)]
    items.append({"sid": "blt.3.band", "key": "steps", "time": 1_760_000_500, "value": "{\"steps\": 9000}"})
    return items


def zepp_summary(weight: float, impedance: int) -> dict[str, Any]:
    return {"weight": weight, "bmi": 21.8, "bodyScore": 89, "bodyStyle": 5, "bodyWaterRate": 56.92887,
            "boneMass": 2.7305484, "deviceType": 1, "encryptImpedance": str(impedance), "fatRate": 17.01331,
            "height": 172.0, "impedance": impedance, "metabolism": 1358.0, "muscleAge": 25, "muscleRate": 50.961838,
            "proteinRatio": 21.837502, "source": 1, "standBodyWeight": 64.4, "visceralFat": 9.0}


def zepp_records(member: str, start: int, count: int, weight: float) -> list[dict[str, Any]]:
    return [{"dataSource": 1, "deviceId": MI2_MAC.replace(":", ""), "deviceSource": 102,
             "generatedTime": start + day * 86_400, "memberId": member, "userId": "7001", "weightType": 0,
             "summary": zepp_summary(weight + day / 10, 450 + day)} for day in range(count)]


def fill(cloud: Cloud) -> Cloud:
    cloud.devices = devices()
    cloud.bind_keys = {S400_DID: S400_KEY, "blt.3.s200": S200_KEY.upper()}
    cloud.home_records = {S400_MODEL: s400_history()}
    cloud.fitness_records = fitness_history()
    cloud.zepp_members = [{"fuid": 101, "nickname": "Fred", "height": 200, "gender": 1}]
    broken = {**zepp_records("-1", 1_650_000_000, 1, 80.0)[0], "weightType": 3, "generatedTime": 1_650_500_000}
    cloud.zepp_records = {"-1": [*zepp_records("-1", 1_650_000_000, 5, 64.7), broken],
                          "101": zepp_records("101", 1_650_040_000, 4, 92.0)}
    return cloud
