"""The router snippets, pasted for real into Debian's dnsmasq and Unbound, and the CLI around them."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from dns_support import UPSTREAM_ADDRESS, FakeUpstream, addresses, ask, free_port, rcode, required_binary

from interceptor.dns.cli import dns_group
from interceptor.dns.snippets import KINDS

ADDRESS = "192.168.77.10"


def render(kind: str, *extra: str) -> str:
    result = CliRunner().invoke(dns_group, ["snippet", "--for", kind, "--address", ADDRESS, *extra])
    assert result.exit_code == 0, result.output
    return result.output


def dnsmasq_lines(kind: str) -> str:
    """The config lines of a dnsmasq-family snippet (for OpenWrt, the values given to uci)."""
    text = render(kind)
    if kind == "openwrt":
        return "\n".join(f"{key}={value}" for key, value in re.findall(r"@dnsmasq\[0\]\.(\w+)='([^']+)'", text))
    if kind == "pihole":  # the pihole.toml part must be valid TOML
        return "\n".join(tomllib.loads(text.split("# Pi-hole v5")[0])["misc"]["dnsmasq_lines"])
    return text


async def assert_override_without_leak(port: int, upstream: FakeUpstream) -> None:
    assert addresses(await ask(port, "scalews.withings.net")) == [ADDRESS]
    for qtype in ("AAAA", "HTTPS"):
        reply = await ask(port, "scalews.withings.net", qtype)
        assert rcode(reply) == "NOERROR" and reply.answer == [], qtype
    assert addresses(await ask(port, "forwarded.example.com")) == [UPSTREAM_ADDRESS]
    assert upstream.log.names() == ["forwarded.example.com."]  # nothing about the scale's name went upstream


@pytest.mark.parametrize("kind", ["dnsmasq", "openwrt", "pihole"])
async def test_dnsmasq_family_snippets_work_in_real_dnsmasq(
    kind: str, dnsmasq: Callable[[str], int], upstream: FakeUpstream
) -> None:
    port = dnsmasq(dnsmasq_lines(kind) + f"\nserver=127.0.0.1#{upstream.port}\n")
    await assert_override_without_leak(port, upstream)


async def test_unbound_snippet_works_in_real_unbound(
    tmp_path: Path, run_daemon: Callable[..., int], upstream: FakeUpstream
) -> None:
    binary = required_binary("unbound")
    port = free_port()
    conf = tmp_path / "unbound.conf"
    conf.write_text(
        f"""server:
    interface: 127.0.0.1@{port}
    do-daemonize: no
    username: ""
    chroot: ""
    pidfile: ""
    directory: "{tmp_path}"
    use-syslog: no
    logfile: ""
    do-ip6: no
    do-not-query-localhost: no
    module-config: "iterator"
    access-control: 127.0.0.0/8 allow
{render("unbound").split("server:", 1)[1]}
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@{upstream.port}
"""
    )
    run_daemon([binary, "-d", "-c", str(conf)], port)
    await assert_override_without_leak(port, upstream)


@pytest.mark.parametrize("kind", KINDS)
def test_every_snippet_names_the_host_and_address(kind: str) -> None:
    text = render(kind, "--name", "Scale.Example.")
    assert "scale.example" in text and ADDRESS in text


def test_snippet_rejects_bad_input() -> None:
    runner = CliRunner()
    bad_address = runner.invoke(dns_group, ["snippet", "--for", "dnsmasq", "--address", "fd00::1"])
    assert bad_address.exit_code == 2 and "not an IPv4 address" in bad_address.output
    bad_name = runner.invoke(dns_group, ["snippet", "--for", "dnsmasq", "--address", ADDRESS, "--name", "a b"])
    assert bad_name.exit_code == 2 and "not a DNS name" in bad_name.output
    unknown = runner.invoke(dns_group, ["snippet", "--for", "windows"])
    assert unknown.exit_code == 2


def test_snippet_takes_name_and_address_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "interceptor.toml"
    config.write_text('[[dns.intercept]]\nname = "scale.home.test"\naddress = "10.9.8.7"\n')
    result = CliRunner().invoke(dns_group, ["snippet", "--for", "unbound", "--config", str(config)])
    assert result.exit_code == 0 and '"scale.home.test. 300 IN A 10.9.8.7"' in result.output


def test_bad_config_is_one_line_and_exit_2(tmp_path: Any) -> None:
    config = tmp_path / "interceptor.toml"
    config.write_text('[dns]\nupstreams = ["resolver.example:53"]\n')
    result = CliRunner().invoke(dns_group, ["--config", str(config)])
    assert result.exit_code == 2
    assert "dns.upstreams" in result.output and "must be an IP address" in result.output
