"""BLE decoding throughput against xiaomi-ble, and the gateway's resident memory.

1. Decode. One realistic stream (most adverts are phones, trackers and other Xiaomi devices on
   0xFE95; some are Mi Scale/Mi Scale 2 frames; a few are encrypted S400 frames) is decoded by
   `interceptor.ble.decode.decode_frame` and, in the same run, by the `xiaomi-ble` package
   (`XiaomiBluetoothDeviceData.update`, one parser per MAC, as Home Assistant keeps them), on
   inputs built beforehand for both. Rounds alternate; the median of each is kept. Floor: ratio >= 1.0.
2. RSS. `interceptor gateway --from-file FRAMES --loop --rate 2000` (the file source stands in for
   the adapter) forwards to a real `interceptor serve` on loopback; its VmRSS is sampled for
   `--seconds`. Floor: max <= 40 MB.

    .venv/bin/pip install xiaomi-ble   # the baseline, for this benchmark only
    .venv/bin/python bench/ble/decode.py [--frames 20000] [--rounds 5] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from interceptor.ble.decode import decode_frame  # noqa: E402
from interceptor.ble.frames import Frame  # noqa: E402
from tests.ble.conftest import TOKEN, ble_toml  # noqa: E402
from tests.ble.streams import interleave, mi_scale_2_weigh_in, mi_scale_weigh_in, noise, s400_weigh_in  # noqa: E402
from tests.conftest import INTERCEPTOR, free_port, start_server  # noqa: E402

S400_KEY = bytes.fromhex("0728974d657a4b60964c1b1677f35f7c")
BASE_UUID = "0000{}-0000-1000-8000-00805f9b34fb"


def realistic_mix(count: int, seed: int = 1) -> list[Frame]:
    """~90 % other adverts, ~7 % Mi Scale frames, ~3 % encrypted S400 frames."""
    rng = random.Random(seed)
    scale: list[Frame] = []
    start = 1744250606.0
    while len(scale) < count // 10:
        scale += s400_weigh_in(start) + mi_scale_2_weigh_in(start + 20) + mi_scale_weigh_in(start + 40, 70.0)
        start += 60
    frames = scale[: count // 10]
    frames += [noise(rng, start + i * 0.001) for i in range(count - len(frames))]
    rng.shuffle(frames)
    return frames


def ours(frames: list[Frame]) -> float:
    keys = {"8C:D0:B2:F6:BE:EF": S400_KEY}.get
    began = time.perf_counter()
    for frame in frames:
        decode_frame(frame, keys)
    return len(frames) / (time.perf_counter() - began)


def theirs(frames: list[Frame]) -> float:
    from home_assistant_bluetooth import BluetoothServiceInfo
    from xiaomi_ble import XiaomiBluetoothDeviceData

    infos = [BluetoothServiceInfo(
        name=frame.name or "", address=frame.mac, rssi=frame.rssi or -127,
        manufacturer_data=dict(frame.manufacturer_data),
        service_data={BASE_UUID.format(uuid) if len(uuid) == 4 else uuid: data
                      for uuid, data in frame.service_data.items()},
        service_uuids=[], source="bench") for frame in frames]
    parsers: dict[str, XiaomiBluetoothDeviceData] = {}
    for info in infos:
        if info.address not in parsers:
            parsers[info.address] = XiaomiBluetoothDeviceData(
                bindkey=S400_KEY if info.address == "8C:D0:B2:F6:BE:EF" else None)
    began = time.perf_counter()
    for info in infos:
        parsers[info.address].update(info)
    return len(infos) / (time.perf_counter() - began)


def decode_bench(count: int, rounds: int) -> dict[str, float]:
    frames = realistic_mix(count)
    ours_rates, theirs_rates = [], []
    for _ in range(rounds):
        ours_rates.append(ours(frames))
        theirs_rates.append(theirs(frames))
    ours_rate, theirs_rate = statistics.median(ours_rates), statistics.median(theirs_rates)
    return {"frames": count, "ours_fps": ours_rate, "xiaomi_ble_fps": theirs_rate, "ratio": ours_rate / theirs_rate}


def rss_bench(seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        config = root / "interceptor.toml"
        config.write_text(ble_toml(), encoding="utf-8")
        stream = root / "frames.jsonl"
        stream.write_text("".join(json.dumps(frame.to_json()) + "\n" for frame in interleave(
            [s400_weigh_in(), mi_scale_2_weigh_in(1744250620.0)], noise_per_frame=20)), encoding="utf-8")
        port = free_port()
        server = start_server(config, root / "server", port)
        gateway = subprocess.Popen(
            [str(INTERCEPTOR), "gateway", "--server", f"http://127.0.0.1:{port}", "--from-file", str(stream),
             "--loop", "--rate", "2000", "--data-dir", str(root / "gateway")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "INTERCEPTOR_GATEWAY_TOKEN": TOKEN})
        samples = []
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and gateway.poll() is None:
                time.sleep(0.25)
                status = Path(f"/proc/{gateway.pid}/status").read_text()
                samples.append(int(next(line.split()[1] for line in status.splitlines()
                                        if line.startswith("VmRSS:"))) / 1024)
        finally:
            gateway.send_signal(signal.SIGINT)
            gateway.wait(timeout=10)
            server.kill()
    return {"rss_max_mb": max(samples), "rss_median_mb": statistics.median(samples), "samples": len(samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    options = parser.parse_args()
    decode = decode_bench(options.frames, options.rounds)
    print(f"decode: {decode['frames']} frames; interceptor {decode['ours_fps']:,.0f} frames/s, "
          f"xiaomi-ble {decode['xiaomi_ble_fps']:,.0f} frames/s, ratio {decode['ratio']:.2f} (floor 1.0)")
    rss = rss_bench(options.seconds)
    print(f"gateway RSS while forwarding 2000 frames/s: max {rss['rss_max_mb']:.1f} MB, median "
          f"{rss['rss_median_mb']:.1f} MB over {rss['samples']} samples (floor 40 MB)")
    if decode["ratio"] < 1.0 or rss["rss_max_mb"] > 40:
        sys.exit(1)


if __name__ == "__main__":
    main()
