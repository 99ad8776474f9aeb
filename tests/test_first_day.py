"""A household's first day (issue 12), as a new user meets it: which config is in use, start-up errors
that name the right flags and all the problems at once, `doctor` run as the service's user, and one
convention across every command (`--config`, `--data-dir`, `--format`, errors, pipes). Every test runs
the real `interceptor` command and reads its output as printed."""

from __future__ import annotations

import ast
import asyncio
import importlib.metadata
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from interceptor.withings import scale
from tests.conftest import INTERCEPTOR, Served, free_port, run_cli, start_server, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "captures"
VENV_PYTHON = os.path.realpath(Path(sys.executable))


def bare_env(home: Path) -> dict[str, str]:
    """A user's environment: no INTERCEPTOR_* variable, the journal under this test's home."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "XDG_DATA_HOME": str(home / "xdg")}


def as_nobody(*args: str, home: Path) -> subprocess.CompletedProcess:
    """The real command as an unprivileged user (setpriv, from util-linux, is on every Debian)."""
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all",
                           str(INTERCEPTOR), *args], capture_output=True, text=True, timeout=60,
                          env=bare_env(home), check=False)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory `nobody` may write (pytest's tmp_path is closed to other users)."""
    path = Path(tempfile.mkdtemp(prefix="interceptor-first-day-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path)


# 1. Which config is in use ------------------------------------------------------------------------


def test_serve_says_which_config_it_read_and_who_is_in_the_household(served: Served) -> None:
    log = served.log_path.read_text(encoding="utf-8")
    assert f"config: {served.config_path}, with --data-dir, --http-listen, --web-listen, --no-dns;" in log
    assert "household fed, fra (Europe/Paris)" in log
    assert "nobody is in the household" not in log


def test_started_from_another_directory_it_says_it_knows_nobody(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen([str(INTERCEPTOR), "serve", "--no-dns", "--http-listen", f"127.0.0.1:{port}",
                                "--web-listen", f"127.0.0.1:{free_port()}"], cwd=tmp_path, env=bare_env(tmp_path),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port, process)
    finally:
        process.terminate()
        log, _ = process.communicate(timeout=10)
    assert f"config: no file (none at {tmp_path}/interceptor.toml or /etc/interceptor/interceptor.toml" in log
    assert "WARNING interceptor.config: no config file was found, so nobody is in the household" in log
    listed = run_cli("devices", "list", cwd=tmp_path, env=bare_env(tmp_path))
    assert listed.stderr.startswith("interceptor: warning: no config file was found, so nobody is in the household")
    checked = run_cli("config", "check", cwd=tmp_path, env=bare_env(tmp_path))
    assert checked.stderr.startswith("config OK: no file (none at ")


# 3. Start-up errors -------------------------------------------------------------------------------


def test_every_listener_problem_at_once_with_serves_own_flags(open_dir: Path) -> None:
    """As a normal user, ports 80 and 53 both fail; both are said, with the flags `serve` has, the
    interpreter that needs the capability, and nothing claimed to be listening."""
    result = as_nobody("serve", "--data-dir", str(open_dir / "data"), "--http-listen", "127.0.0.1:80",
                       "--dns-listen", "127.0.0.1:53", "--web-listen", f"127.0.0.1:{free_port()}", home=open_dir)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("interceptor: ")]
    assert len(errors) == 2, result.stderr
    http, dns = errors
    assert http.startswith("interceptor: HTTP port 80 needs privileges: run as root, or let this Python bind ports")
    assert f"`sudo setcap cap_net_bind_service=+ep {VENV_PYTHON}`" in http
    assert http.endswith("or listen on a port above 1023 with --http-listen HOST:PORT")
    assert dns.startswith("interceptor: DNS port 53 needs privileges")
    assert "with --dns-listen HOST:PORT, or run without the responder (--no-dns)" in dns
    assert "listening" not in result.stderr and "--listen " not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_taken_dns_port_suggests_no_dns(config_path: Path, data_dir: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        result = run_cli("serve", "--config", str(config_path), "--data-dir", str(data_dir), "--http-listen",
                         f"127.0.0.1:{free_port()}", "--web-listen", f"127.0.0.1:{free_port()}", "--dns-listen",
                         f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert (f"interceptor: DNS address 127.0.0.1:{port} is already in use: stop that program, or choose"
            " --dns-listen HOST:PORT, or run without the responder (--no-dns)") in result.stderr


def test_a_bad_listen_flag_is_blamed_on_the_flag(config_path: Path) -> None:
    result = run_cli("serve", "--config", str(config_path), "--http-listen", "everywhere")
    assert result.returncode == 2
    assert "--http-listen: http.listen: 'everywhere' is not HOST:PORT" in result.stderr
    assert "(environment)" not in result.stderr


# 4. doctor as the service's user ------------------------------------------------------------------


def privileged_free_port() -> int:
    for port in range(990, 900, -1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 1024 on 127.0.0.1")


def test_doctor_as_an_unprivileged_user_sees_the_server_answer(config_path: Path, data_dir: Path,
                                                                open_dir: Path) -> None:
    """The service binds a privileged port with its capability; doctor, run by a user without it and
    told where with --http-listen, finds the server answering instead of claiming it needs privileges."""
    port = privileged_free_port()
    served = start_server(config_path, data_dir, port)
    try:
        result = as_nobody("doctor", "--data-dir", str(open_dir / "data"), "--http-listen", f"127.0.0.1:{port}",
                           "--check", "http", home=open_dir)
    finally:
        served.kill()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == f"ok    http: interceptor answers the scale's requests on 127.0.0.1:{port}\n"


# 8. One convention --------------------------------------------------------------------------------


def commands() -> dict[str, click.Command]:
    """Every leaf command of the real `interceptor` command object, by its path (a group that also runs,
    as `dns` does, counts as a command too)."""
    from interceptor.cli import main

    found: dict[str, click.Command] = {}
    pending: list[tuple[str, click.Command]] = [("", main)]
    while pending:
        path, command = pending.pop()
        if isinstance(command, click.Group):
            context = click.Context(command)
            pending += [(f"{path} {name}".strip(), child) for name in command.list_commands(context)
                        if (child := command.get_command(context, name)) is not None]
            if not getattr(command, "invoke_without_command", False):
                continue
        if path:
            found[path] = command
    return found


def options(command: click.Command) -> set[str]:
    return {name for parameter in command.params for name in parameter.opts}


def test_every_command_takes_config_and_data_dir_and_words_errors_alike() -> None:
    every = commands()
    assert len(every) >= 20, sorted(every)
    missing = sorted(path for path, command in every.items() if not {"--config", "--data-dir"} <= options(command))
    assert not missing, missing
    for path in ("compute", "ble decode", "dns snippet"):
        wrong = run_cli(*path.split(), "--no-such-flag")
        assert wrong.returncode == 2 and wrong.stdout == "", path
        assert wrong.stderr == (f"interceptor: No such option '--no-such-flag' (see `interceptor {path}"
                                " --help`)\n"), wrong.stderr


def test_commands_that_print_records_offer_table_json_and_csv() -> None:
    every = commands()
    for path in ("measurements list", "devices list", "compute", "replay", "ble decode", "ble replay",
                 "xiaomi devices"):
        (output,) = (parameter for parameter in every[path].params if "--format" in parameter.opts)
        assert isinstance(output.type, click.Choice) and list(output.type.choices) == ["table", "json", "csv"], path
    assert "[table|json|csv]" in run_cli("devices", "list", "--help").stdout


def test_compute_takes_the_person_from_the_config(config_path: Path) -> None:
    """Fra (female, 161 cm, born 1983-08-20) on 2024-08-20, aged 41 years less the quarter day of
    leap years the decimal age counts (365.2425-day years from midnight UTC to midnight in Paris)."""
    reading = ["--weight-kg", "60", "--impedance-ohm", "500", "--format", "json"]
    from_config = run_cli("compute", "--config", str(config_path), "--user", "fra", "--date", "2024-08-20", *reading)
    age = (14976 - 2 / 24) / 365.2425  # days from 1983-08-20 to 2024-08-20, less Paris's two hours
    typed = run_cli("compute", "--sex", "female", "--age", repr(age), "--height-cm", "161", *reading)
    assert from_config.returncode == 0, from_config.stderr
    assert json.loads(from_config.stdout) == json.loads(typed.stdout)
    without = run_cli("compute", *reading)
    assert without.returncode == 2 and without.stderr == (
        "interceptor: --sex, --age, --height-cm needed, or --user PERSON to take them from the config\n")


def test_a_closed_pipe_ends_quietly() -> None:
    """`replay --format json | head -1`: the reader goes after one line."""
    files = sorted(str(path) for path in CAPTURES.glob("*.pcap*"))
    process = subprocess.Popen([str(INTERCEPTOR), "replay", "--config", str(CAPTURES / "household.toml"),
                                "--format", "json", *files], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    assert json.loads(process.stdout.readline())["file"]
    process.stdout.close()
    errors = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0  # what `head` users expect, as of other tools on SIGPIPE
    assert "BrokenPipe" not in errors and "unexpected" not in errors and "Traceback" not in errors, errors
    assert "Exception ignored" not in errors, errors


def test_replay_against_a_server_says_whose_journal_it_cannot_read(served: Served, tmp_path: Path) -> None:
    capture = str(CAPTURES / "wbs01-weigh-in.pcapng")
    other = tmp_path / "other"
    assert run_cli("replay", "--ingest", "--config", str(served.config_path), "--data-dir", str(other),
                   capture).returncode == 0  # another journal, with a weigh-in of its own
    against = f"http://127.0.0.1:{served.port}"
    elsewhere = run_cli("replay", "--config", str(served.config_path), "--data-dir", str(other), "--against",
                        against, "--format", "json", capture)
    summary = json.loads(elsewhere.stdout.splitlines()[-1])
    assert summary["journal"] == (f"the journal of the server at {against} is not {other}: its measurements are"
                                  " not read back (pass the --data-dir it runs with)")
    own = served.cli("replay", "--against", against, "--format", "json",
                     str(CAPTURES / "ws50-weigh-in-and-environment.pcap"))
    assert json.loads(own.stdout.splitlines()[-1])["journal"] == f"journal {served.data_dir / 'journal.sqlite'}"


def test_an_environment_variable_is_blamed_for_its_own_mistake(config_path: Path) -> None:
    config_path.write_text(config_path.read_text() + '\n[influx]\nurl = "http://127.0.0.1:8086"\n')
    result = run_cli("config", "check", "--config", str(config_path),
                     env={**os.environ, "INTERCEPTOR_INFLUX__DIALECT": "v2"})
    assert result.returncode == 2
    assert "  INTERCEPTOR_INFLUX__DIALECT (environment): influx: dialect 'v2' needs token, org, bucket" in result.stderr
    people = run_cli("config", "check", "--config", str(config_path),
                     env={**os.environ, "INTERCEPTOR_USERS": '[{"slug": "Anna"}]'})
    assert "  INTERCEPTOR_USERS (environment): users[0].slug:" in people.stderr


def test_tables_write_every_mac_alike(config_path: Path, data_dir: Path) -> None:
    """A Withings scale sends its MAC in lower case, BLE stacks in upper case: tables show one form."""
    from tests.ble.btsnoop_writer import btsnoop, legacy_report
    from tests.ble.conftest import ble_toml
    from tests.ble.streams import S400_MAC, interleave, s400_weigh_in

    config_path.write_text(ble_toml(), encoding="utf-8")
    capture = data_dir.parent / "s400.btsnoop"
    frames = interleave([s400_weigh_in()], noise_per_frame=0)
    capture.write_bytes(btsnoop([(frame.time, legacy_report(frame)) for frame in frames]))
    assert run_cli("ble", "replay", "--ingest", str(capture), "--config", str(config_path), "--data-dir",
                   str(data_dir)).returncode == 0
    served = start_server(config_path, data_dir)
    try:
        asyncio.run(scale.weigh_in("127.0.0.1", served.port, meastime=int(time.time()) - 30, weight_g=80000))
    finally:
        served.kill()
    devices = served.cli("devices", "list").stdout
    listed = served.cli("measurements", "list").stdout
    for text in (devices, listed):
        assert S400_MAC.upper() in text and scale.ScaleIdentity().mac.upper() in text
        assert not re.search(r"\b(?:[0-9a-f]{2}:){5}[0-9a-f]{2}\b", text), text


# 10. Small things ---------------------------------------------------------------------------------


def test_the_gateways_variables_do_not_stop_the_server(config_path: Path) -> None:
    """One environment file for a box that runs both the server and the gateway."""
    env = {**os.environ, "INTERCEPTOR_GATEWAY_TOKEN": "a-long-random-token-string",
           "INTERCEPTOR_GATEWAY_SERVER": "http://192.168.1.10"}
    for command in (["config", "check"], ["dns", "snippet", "--for", "dnsmasq"]):
        result = run_cli(*command, "--config", str(config_path), env=env)
        assert result.returncode == 0, result.stderr


def test_help_lists_the_commands_without_loading_them() -> None:
    """`interceptor --help` imports click and the command list, not the server, pydantic or aiohttp."""
    result = subprocess.run([str(INTERCEPTOR), "--help"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}, check=False)
    assert result.returncode == 0 and "serve" in result.stdout and "gateway" in result.stdout
    imported = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    heavy = sorted(name for name in imported if name.split(".")[0] in {"pydantic", "aiohttp", "dnslib", "dpkt"}
                   or name.startswith(("interceptor.store", "interceptor.importers", "interceptor.ble",
                                       "interceptor.capture", "interceptor.config")))
    assert not heavy, heavy


def third_party_imports(path: Path, seen: set[Path]) -> set[str]:
    """Top-level modules outside the standard library that `path` imports, following this repository's
    own modules of `tests` and `bench` (which a benchmark runs with the bench extra alone)."""
    if path in seen:
        return set()
    seen.add(path)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
        for name in names:
            top = name.split(".")[0]
            if top in ("tests", "bench"):
                local = ROOT / Path(*name.split("."))
                for candidate in (local.with_suffix(".py"), local / "__init__.py"):
                    if candidate.exists():
                        found |= third_party_imports(candidate, seen)
            elif top != "interceptor" and top not in sys.stdlib_module_names and top != "__future__":
                found.add(top)
    return found


def test_the_bench_extra_provides_what_the_benchmarks_import() -> None:
    """Distributions the benchmarks import (where installed here) come with the core dependencies or
    the bench extra; modules of packages not installed here are xiaomi-ble's (the bench extra)."""
    metadata = importlib.metadata.metadata("scale-interceptor")
    requirements = metadata.get_all("Requires-Dist") or []

    def name(requirement: str) -> str:
        return re.split(r"[\s;\[<>=!~(]", requirement, maxsplit=1)[0].lower().replace("_", "-")

    provided = {name(item) for item in requirements if "extra ==" not in item or 'extra == "bench"' in item}
    closure, pending = set(), list(provided)
    while pending:
        distribution = pending.pop()
        if distribution in closure:
            continue
        closure.add(distribution)
        try:
            needs = importlib.metadata.requires(distribution) or []
            pending += [name(item) for item in needs if "extra ==" not in item]
        except importlib.metadata.PackageNotFoundError:
            continue
    owners = importlib.metadata.packages_distributions()
    imported: set[str] = set()
    for path in sorted((ROOT / "bench").rglob("*.py")):
        imported |= third_party_imports(path, set())
    missing = {module: owners[module] for module in imported if module in owners
               and not {owner.lower().replace("_", "-") for owner in owners[module]} & closure}
    assert not missing, f"imported by bench/ but not in its extra: {missing}"


def test_the_schemas_example_is_what_the_sink_writes(tmp_path: Path) -> None:
    """docs/schema.md's body and environment lines are the WS-50 capture's weigh-in as the InfluxDB sink
    renders it, and its method tag is one the page lists."""
    from interceptor.store.journal import Filter, reader_of
    from interceptor.store.lineprotocol import measurement_line

    stored = run_cli("replay", "--ingest", "--config", str(CAPTURES / "household.toml"), "--data-dir",
                     str(tmp_path), str(CAPTURES / "ws50-weigh-in-and-environment.pcap"))
    assert stored.returncode == 0, stored.stderr
    with reader_of(tmp_path / "journal.sqlite") as reader:
        written = [measurement_line(item) for item in reader.measurements(Filter())]  # what the sink renders
    page = (ROOT / "docs" / "schema.md").read_text(encoding="utf-8")
    example = page.split("## Example (line protocol)", 1)[1].split("```")[1].strip().splitlines()
    body = next(line for line in example if line.startswith("body,"))
    assert body in written and example[1] in written
    (method,) = re.findall(r",method=([a-z0-9]+)", body)
    listed = next(line for line in page.splitlines() if line.startswith("| `method` |"))
    assert f"`{method}`" in listed
    assert "DESIGN.md" not in page  # the project has no such file
