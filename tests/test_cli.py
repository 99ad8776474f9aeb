"""The `interceptor` command as users run it: listing, filtering, formats, and clear errors."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import shutil
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from interceptor.withings import scale
from tests.conftest import INTERCEPTOR, Served, free_port, run_cli, start_server, wait_for_port
from tests.dns.dns_support import first_dns_answer


def _weigh(served: Served, userid: int, meastime: int, weight_g: int) -> None:
    conversation = asyncio.run(scale.weigh_in("127.0.0.1", served.port, userid=userid, meastime=meastime,
                                              weight_g=weight_g))
    assert conversation.response(2).json()["status"] == 0


def test_list_formats_and_filters(served: Served) -> None:
    now = int(time.time())
    _weigh(served, 2507298, now - 3 * 86400, 86000)
    _weigh(served, 2507298, now - 3600, 85500)
    _weigh(served, 424242, now - 60, 60000)  # an id nobody in the household has: unassigned

    table = served.cli("measurements", "list")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["id", "taken", "(Europe/Paris)"] and len(lines) == 4
    assert "86.00 kg" in lines[1] and "fed" in lines[1] and lines[3].split()[3] == "-"

    rows = list(csv.DictReader(io.StringIO(served.cli("measurements", "list", "--format", "csv").stdout)))
    assert [row["weight_kg"] for row in rows] == ["86.0", "85.5", "60.0"]
    assert [row["user"] for row in rows] == ["fed", "fed", ""]

    only_fed = json.loads(served.cli("measurements", "list", "--format", "json", "--user", "fed").stdout)
    assert [item["readings"]["weight_kg"] for item in only_fed] == [86.0, 85.5]
    since = datetime.fromtimestamp(now - 2 * 86400, ZoneInfo("Europe/Paris")).date().isoformat()  # the household's day
    recent = json.loads(served.cli("measurements", "list", "--format", "json", "--since", since).stdout)
    assert len(recent) == 2

    nobody = json.loads(served.cli("measurements", "list", "--format", "json", "--user", "unassigned").stdout)
    assert [item["readings"]["weight_kg"] for item in nobody] == [60.0]
    unknown_user = served.cli("measurements", "list", "--user", "zed")
    assert unknown_user.returncode == 2 and "'zed' is not in the household (fed, fra)" in unknown_user.stderr
    bad_since = served.cli("measurements", "list", "--since", "last tuesday")
    assert bad_since.returncode == 2 and "YYYY-MM-DD" in bad_since.stderr


def test_serve_runs_with_no_config_file_as_an_empty_household(tmp_path: Path) -> None:
    """No --config, no ./interceptor.toml: an empty household, the journal in $XDG_DATA_HOME."""
    port = free_port()
    process_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    process = subprocess.Popen([str(INTERCEPTOR), "serve", "--no-dns", "--http-listen", f"127.0.0.1:{port}",
                                "--web-listen", f"127.0.0.1:{free_port()}"],
                               cwd=tmp_path, env=process_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process)
        conversation = asyncio.run(scale.weigh_in("127.0.0.1", port, meastime=int(time.time()) - 5, weight_g=77000))
        assert conversation.response(1).json()["body"]["sp"]["users"] == []
        assert conversation.response(2).json()["status"] == 0
    finally:
        process.terminate()
        process.wait(timeout=10)
    listed = run_cli("measurements", "list", "--format", "json", cwd=tmp_path, env=process_env)
    (stored,) = json.loads(listed.stdout)
    assert stored["user"] is None and stored["readings"] == {"weight_kg": 77.0, "battery_pct": 69.0}


def test_port_in_use_is_one_clear_line(config_path, data_dir) -> None:
    first = start_server(config_path, data_dir)
    try:
        result = run_cli("serve", "--no-dns", "--config", str(config_path), "--data-dir", str(data_dir),
                         "--http-listen", f"127.0.0.1:{first.port}", "--web-listen", f"127.0.0.1:{free_port()}")
    finally:
        first.kill()
    assert result.returncode == 1
    assert f"HTTP address 127.0.0.1:{first.port} is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_listing_before_anything_was_stored_says_so(config_path, tmp_path) -> None:
    result = run_cli("measurements", "list", "--config", str(config_path), "--data-dir", str(tmp_path / "empty"))
    assert result.returncode == 1 and "nothing has been stored yet" in result.stderr


def test_a_privileged_port_without_privileges_says_how_to_grant_them() -> None:
    """Run as `nobody` (setpriv, from util-linux, is on every Debian) against port 80."""
    data = Path(tempfile.mkdtemp(prefix="interceptor-nobody-"))  # pytest's tmp_path is closed to others
    data.chmod(0o777)
    result = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all", str(INTERCEPTOR),
         "serve", "--no-dns", "--data-dir", str(data), "--http-listen", "127.0.0.1:80", "--web-listen",
         f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(data)}, check=False,
    )
    shutil.rmtree(data)
    assert result.returncode == 1, result.stderr
    assert "HTTP port 80 needs privileges" in result.stderr and "cap_net_bind_service" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_check_masks_secrets(tmp_path: Path) -> None:
    config = tmp_path / "interceptor.toml"
    config.write_text('[influx]\nurl = "http://127.0.0.1:8086"\nusername = "grafana"\npassword = "hunter2"\n')
    result = run_cli("config", "check", "--config", str(config))
    assert result.returncode == 0
    assert "hunter2" not in result.stdout + result.stderr
    assert json.loads(result.stdout)["influx"]["password"] == "**********"


def test_serve_also_answers_dns_for_the_scale(tmp_path: Path) -> None:
    """`interceptor serve` starts the DNS responder too (unless --no-dns): the scale's name resolves here."""
    import dns.message
    import dns.query

    dns_port, http_port = free_port(), free_port()
    config = tmp_path / "interceptor.toml"
    config.write_text(f'[http]\nlisten = "127.0.0.1:{http_port}"\n'
                      f'[dns]\nlisten = ["127.0.0.1:{dns_port}"]\nupstreams = ["127.0.0.1:9"]\n'
                      f'[web]\nlisten = "127.0.0.1:{free_port()}"\n')
    process = subprocess.Popen([str(INTERCEPTOR), "serve", "--config", str(config), "--data-dir", str(tmp_path / "d")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(http_port, process)
        answer = first_dns_answer(dns_port)
        assert [item.address for rrset in answer.answer for item in rrset] == ["127.0.0.1"]
        aaaa = dns.query.udp(dns.message.make_query("scalews.withings.net", "AAAA"), "127.0.0.1", port=dns_port,
                             timeout=5)
        assert aaaa.rcode() == 0 and aaaa.answer == []
    finally:
        process.terminate()
        process.wait(timeout=10)
