"""deploy/systemd/*.service: parsed as systemd reads them (sections of `Key=value`, keys may repeat),
checked for what the server and the gateway need, and given to `systemd-analyze verify` and
`systemd-analyze security --offline` (Debian's `systemd` package, installed by `setup.sh --test`; no
systemd needs to be running)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
SERVER = UNITS / "interceptor.service"
GATEWAY = UNITS / "interceptor-gateway.service"
README = ROOT / "deploy" / "README.md"
INSTALLED_BINARY = Path(sys.executable).parent / "interceptor"
SYSTEMD_ANALYZE_PATH = shutil.which("systemd-analyze")
HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes"}

Unit = dict[str, dict[str, list[str]]]


@pytest.fixture
def systemd_analyze() -> str:
    """Missing fails the run loudly, as the README promises: the test set-up installs it."""
    if SYSTEMD_ANALYZE_PATH is None:
        pytest.fail("systemd-analyze is not installed: run ./scripts/setup.sh --test (it installs Debian's systemd)")
    return SYSTEMD_ANALYZE_PATH


def parse_unit(text: str) -> Unit:
    """Sections → key → every value given (systemd allows repeats, e.g. SystemCallFilter)."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"line {number}: a key outside any section"
        key, equals, value = line.partition("=")
        assert equals and key.strip() and " " not in key.strip(), f"line {number}: not Key=value: {raw}"
        assert not raw.rstrip().endswith("\\"), f"line {number}: keep each setting on one line"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def one(unit: Unit, section: str, key: str) -> str:
    values = unit[section].get(key, [])
    assert len(values) == 1, f"[{section}] {key}: expected one value, got {values}"
    return values[0]


def words(unit: Unit, section: str, key: str) -> set[str]:
    return {word for value in unit[section].get(key, []) for word in value.split()}


def test_parser_keeps_repeated_keys_and_rejects_junk() -> None:
    unit = parse_unit("[Service]\nA=1\n# c\nA=2 3\n")
    assert unit == {"Service": {"A": ["1", "2 3"]}}
    with pytest.raises(AssertionError, match="outside any section"):
        parse_unit("A=1\n")
    with pytest.raises(AssertionError, match="not Key=value"):
        parse_unit("[Unit]\nnonsense\n")


@pytest.fixture(scope="module")
def server() -> Unit:
    return parse_unit(SERVER.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def gateway() -> Unit:
    return parse_unit(GATEWAY.read_text(encoding="utf-8"))


def check_common(unit: Unit) -> list[str]:
    """What both units share; returns ExecStart as words."""
    assert set(unit) == {"Unit", "Service", "Install"}
    assert one(unit, "Unit", "Description")
    assert "network-online.target" in words(unit, "Unit", "After")
    assert one(unit, "Service", "User") == "interceptor"
    assert one(unit, "Service", "Restart") == "on-failure"
    for key, value in HARDENING.items():
        assert one(unit, "Service", key) == value, key
    assert one(unit, "Install", "WantedBy") == "multi-user.target"
    command = shlex.split(one(unit, "Service", "ExecStart"))
    assert Path(command[0]).is_absolute() and Path(command[0]).name == "interceptor", command[0]
    return command


def test_server_unit(server: Unit) -> None:
    command = check_common(server)
    assert command[1:] == ["serve", "--config", "/etc/interceptor/interceptor.toml", "--data-dir",
                           "/var/lib/interceptor"]
    # Ports 53 and 80 without root: this capability and no other, in both the ambient and bounding set.
    assert words(server, "Service", "AmbientCapabilities") == {"CAP_NET_BIND_SERVICE"}
    assert words(server, "Service", "CapabilityBoundingSet") == {"CAP_NET_BIND_SERVICE"}
    # The journal directory is the StateDirectory: created, owned by User=, writable under ProtectSystem.
    state = one(server, "Service", "StateDirectory")
    assert f"/var/lib/{state}" == command[command.index("--data-dir") + 1]
    assert "ReadWritePaths" not in server["Service"], "StateDirectory already makes the journal writable"
    assert words(server, "Service", "RestrictAddressFamilies") >= {"AF_INET", "AF_INET6"}
    assert one(server, "Service", "PrivateDevices") == "yes", "the server needs no device node"


def test_gateway_unit(gateway: Unit) -> None:
    command = check_common(gateway)
    assert command[1:] == ["gateway", "--data-dir", "/var/lib/interceptor-gateway"]
    assert f"/var/lib/{one(gateway, 'Service', 'StateDirectory')}" == command[3]
    assert one(gateway, "Service", "EnvironmentFile") == "/etc/interceptor/gateway.env"
    assert words(gateway, "Service", "AmbientCapabilities") == {"CAP_NET_ADMIN", "CAP_NET_RAW"}
    assert words(gateway, "Service", "CapabilityBoundingSet") == {"CAP_NET_ADMIN", "CAP_NET_RAW"}
    assert "bluetooth" in words(gateway, "Service", "SupplementaryGroups")
    assert "AF_BLUETOOTH" in words(gateway, "Service", "RestrictAddressFamilies")
    assert "bluetooth.target" in words(gateway, "Unit", "After")


def test_the_units_command_lines_are_ones_the_cli_accepts(server: Unit, gateway: Unit) -> None:
    from interceptor.cli import main

    for unit in (server, gateway):
        arguments = shlex.split(one(unit, "Service", "ExecStart"))[1:]
        command = main.get_command(click.Context(main), arguments[0])
        assert command is not None, arguments[0]
        command.make_context(arguments[0], arguments[1:])  # raises on an unknown option


def test_units_run_what_the_readme_installs(server: Unit, gateway: Unit) -> None:
    readme = README.read_text(encoding="utf-8")
    for unit in (server, gateway):
        binary = shlex.split(one(unit, "Service", "ExecStart"))[0]
        venv = str(Path(binary).parent.parent)
        assert f"python3 -m venv {venv}" in readme, f"deploy/README.md must create the venv {venv}"
    assert "useradd" in readme and " interceptor" in readme


def test_the_gateway_steps_create_what_its_unit_needs_on_a_machine_of_its_own(gateway: Unit) -> None:
    """The gateway may run on another Pi: its section must create the directory its environment file
    goes to before writing it, and send the reader to the steps that create its user and venv."""
    readme = README.read_text(encoding="utf-8")
    section = readme[readme.index("## The BLE gateway"):]
    (environment_file,) = gateway["Service"]["EnvironmentFile"]
    directory = str(Path(environment_file).parent)
    created = section.find(f"install -d -m 0755 {directory}")
    assert 0 <= created < section.index(f"/dev/stdin {environment_file}"), f"{directory} is never created"
    assert f"the user `{one(gateway, 'Service', 'User')}`" in section and "steps 1 to 3 of A" in section


def installable_copy(unit_path: Path, directory: Path) -> Path:
    """The unit with ExecStart's binary pointed at this checkout's installed `interceptor`, so that
    `verify` checks the directives rather than the absence of /opt/interceptor on this machine."""
    text = unit_path.read_text(encoding="utf-8")
    binary = shlex.split(one(parse_unit(text), "Service", "ExecStart"))[0]
    copy = directory / unit_path.name
    copy.write_text(text.replace(binary, str(INSTALLED_BINARY)), encoding="utf-8")
    return copy


@pytest.mark.parametrize("unit_path", [SERVER, GATEWAY], ids=lambda path: path.name)
def test_systemd_analyze_verify(unit_path: Path, tmp_path: Path, systemd_analyze: str) -> None:
    assert INSTALLED_BINARY.exists()
    copy = installable_copy(unit_path, tmp_path)
    result = subprocess.run([systemd_analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60,
                            check=False)
    # An unknown key is only a warning (exit 0): any output at all counts as a failure here.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def test_verify_catches_a_misspelt_key(tmp_path: Path, systemd_analyze: str) -> None:
    copy = installable_copy(SERVER, tmp_path)
    copy.write_text(copy.read_text().replace("ProtectHome=", "ProtectHomes="))
    result = subprocess.run([systemd_analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert "ProtectHomes" in result.stderr


@pytest.mark.parametrize(("unit_path", "ceiling"), [(SERVER, 2.0), (GATEWAY, 2.7)], ids=["server", "gateway"])
def test_systemd_analyze_security(unit_path: Path, ceiling: float, tmp_path: Path, systemd_analyze: str) -> None:
    """systemd's own exposure score (0 best, 10 worst); an unhardened service scores about 9.6."""
    copy = installable_copy(unit_path, tmp_path)
    result = subprocess.run([systemd_analyze, "security", "--offline=yes", "--no-pager", str(copy)],
                            capture_output=True, text=True, timeout=60, check=False)
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert score, result.stdout[-2000:] + result.stderr
    assert float(score.group(1)) <= ceiling, result.stdout
