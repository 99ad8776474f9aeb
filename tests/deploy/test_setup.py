"""What `scripts/setup.sh --test` leaves for the next boot: the daemons the tests start themselves
(the `off-at-boot` packages of scripts/debian-test-packages.txt) are installed, and none of their
services would start at boot, neither through systemd's `.wants` links nor through SysV `S` links,
so after a reboot nothing the test set-up installed holds port 53 or 8086. Read from this machine as
setup.sh left it; the README runs setup.sh before the tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ROOT / "scripts" / "debian-test-packages.txt"
AGAIN = "run ./scripts/setup.sh --test"


def off_at_boot() -> list[str]:
    lines = [line.split() for line in PACKAGES.read_text(encoding="utf-8").splitlines()]
    return [fields[0] for fields in lines if len(fields) > 1 and not fields[0].startswith("#")
            and fields[1] == "off-at-boot"]


def installed_files(package: str) -> list[str]:
    listed = subprocess.run(["dpkg-query", "-L", package], capture_output=True, text=True, timeout=30, check=False)
    if listed.returncode != 0:
        pytest.fail(f"{package} is not installed: {AGAIN}")
    return listed.stdout.splitlines()


def started_at_boot(package: str) -> list[str]:
    """The links that would start one of the package's services at boot."""
    files = installed_files(package)
    units = {Path(path).name for path in files if "/systemd/system/" in path and path.endswith(".service")}
    scripts = {Path(path).name for path in files if path.startswith("/etc/init.d/")}
    found = []
    for link in Path("/etc/systemd/system").glob("*.wants/*"):
        if link.is_symlink() and (link.name in units or Path(str(link.readlink())).name in units):
            found.append(str(link))
    for script in scripts:
        found += [str(link) for link in Path("/etc").glob(f"rc[2345].d/S[0-9][0-9]{script}")]
    systemctl = shutil.which("systemctl")
    for unit in sorted(units):
        if "@" in unit or systemctl is None:
            continue
        state = subprocess.run([systemctl, "is-enabled", unit], capture_output=True, text=True, timeout=30,
                               check=False).stdout.strip()
        if state in ("enabled", "enabled-runtime", "alias"):
            found.append(f"{unit} ({state})")
    return found


def test_the_daemons_the_tests_start_do_not_start_at_boot() -> None:
    packages = off_at_boot()
    assert {"dnsmasq", "unbound", "influxdb", "mosquitto"} <= set(packages)
    enabled = {package: links for package in packages if (links := started_at_boot(package))}
    assert not enabled, f"these would start at the next boot: {enabled}; {AGAIN}"
