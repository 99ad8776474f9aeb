"""`interceptor dns` as a user runs it: a real process on a loopback port, stopped with SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

from click.testing import CliRunner
from dns_support import addresses, ask, free_port, rcode, wait_for_port

from interceptor.dns.cli import dns_group


async def test_flags_override_the_config_and_sigterm_stops_it() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "interceptor.dns", "--dns-listen", f"127.0.0.1:{port}", "--upstream", "127.0.0.1:9",
         "--intercept", "scale.home.test=10.0.0.7", "--intercept", "*.lab.test=auto", "--query-log"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for_port(port)
        assert addresses(await ask(port, "scale.home.test")) == ["10.0.0.7"]
        assert addresses(await ask(port, "deep.in.lab.test")) == ["127.0.0.1"]
        assert rcode(await ask(port, "scalews.withings.net")) == "SERVFAIL"  # flags replaced the default rule
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "name=scale.home.test. type=A intercepted" in stderr


def test_user_errors_are_one_line_with_exit_status() -> None:
    runner = CliRunner()
    bad_flag = runner.invoke(dns_group, ["--intercept", "no-address"])
    assert bad_flag.exit_code == 2 and "NAME=ADDRESS" in bad_flag.output
    bad_address = runner.invoke(dns_group, ["--intercept", "a.test=not-an-ip", "--dns-listen", "127.0.0.1:0"])
    assert bad_address.exit_code == 2 and "--intercept: dns.intercept" in bad_address.output  # the flag is blamed
    assert "not an IP address" in bad_address.output


def test_port_in_use_exits_1_with_advice() -> None:
    port = free_port()
    with subprocess.Popen([sys.executable, "-m", "http.server", "-b", "127.0.0.1", str(port)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as holder:
        try:
            wait_for_port(port)
            result = subprocess.run(
                [sys.executable, "-m", "interceptor.dns", "--dns-listen", f"127.0.0.1:{port}"],
                capture_output=True, text=True, timeout=20,
            )
        finally:
            holder.terminate()
    assert result.returncode == 1
    assert f"interceptor: DNS address 127.0.0.1:{port} is already in use" in result.stderr
    assert "choose --dns-listen HOST:PORT" in result.stderr and "Traceback" not in result.stderr
