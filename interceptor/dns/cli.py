"""`interceptor dns`: run the responder alone, or print a snippet for someone else's resolver.

The flags are for quick use without a config file (`interceptor dns --dns-listen 127.0.0.1:5353
--intercept scalews.withings.net=192.168.1.10`); they are passed to the config loader as overrides, so
a bad value is reported the same way as a bad config key, naming the flag. Errors follow the
convention of `interceptor.command`: one line, exit 2 for configuration, 1 for a port that cannot be opened.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
from typing import Any

import click

from interceptor import runtime
from interceptor.command import EXIT_CONFIG, UserError, common_options, listen_option, load
from interceptor.config import Override
from interceptor.dns.server import DnsStartError, start_dns_server
from interceptor.dns.settings import DnsSettings, normalise_name
from interceptor.dns.snippets import KINDS, snippet
from interceptor.startup import Listener, ListenError, explain

PLACEHOLDER_ADDRESS = "192.168.1.10"
# How `interceptor dns` moves its listener, for start-up errors.
DNS_LISTENER = Listener("--dns-listen")

log = logging.getLogger(__name__)


def _intercept_rule(flag: str) -> dict[str, Any]:
    """`NAME=ADDRESS` (NAME may start with `*.` for the name and everything below it)."""
    name, separator, address = flag.partition("=")
    if not separator or not name or not address:
        raise UserError(f"--intercept '{flag}' is not NAME=ADDRESS; write e.g. scalews.withings.net=auto", EXIT_CONFIG)
    rule: dict[str, Any] = {"name": name, "address": address}
    if name.startswith("*."):
        rule.update(name=name[2:], subdomains=True)
    return rule


@click.group(name="dns", invoke_without_command=True)
@common_options
@listen_option("dns", "the responder's address, instead of [dns] listen", multiple=True)
@click.option("--upstream", multiple=True, metavar="HOST:PORT", help="forward to these resolvers instead (repeatable)")
@click.option(
    "--intercept", multiple=True, metavar="NAME=ADDRESS",
    help="answer NAME with ADDRESS ('auto': the address the query came in on; '*.NAME' for subdomains too)",
)
@click.option("--query-log", is_flag=True, help="log every query")
@click.pass_context
def dns_group(
    context: click.Context,
    dns_listen: tuple[str, ...],
    upstream: tuple[str, ...],
    intercept: tuple[str, ...],
    query_log: bool,
) -> None:
    """Run the split-horizon DNS responder alone (`interceptor serve` also starts it)."""
    if context.invoked_subcommand is not None:
        return
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = load(
        Override("dns.listen", list(dns_listen) or None, "--dns-listen"),
        Override("dns.upstreams", list(upstream) or None, "--upstream"),
        Override("dns.intercept", [_intercept_rule(flag) for flag in intercept] or None, "--intercept"),
        announce=True, household=False,
    ).dns
    try:
        runtime.serve(_serve(settings, query_log))
    except ListenError as problem:
        raise UserError(explain(problem, DNS_LISTENER)) from None
    except DnsStartError as error:
        raise UserError(str(error)) from None


async def _serve(settings: DnsSettings, query_log: bool) -> None:
    """Answer until SIGINT or SIGTERM, then close the listeners cleanly."""
    server = await start_dns_server(settings, query_log=query_log)
    log.info("DNS responder listening on %s", ", ".join(f"{host} port {port}" for host, port in server.addresses))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()


def _this_machine_ipv4() -> str:
    """The IPv4 address this machine would use on its LAN (no packet is sent), else a placeholder."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only the route matters
            return str(probe.getsockname()[0])
    except OSError:
        return PLACEHOLDER_ADDRESS


@dns_group.command(name="snippet")
@common_options
@click.option("--for", "kind", type=click.Choice(KINDS), required=True, help="the resolver you run")
@click.option("--address", default=None, help="IPv4 address of this server (default: the config's, else detected)")
@click.option("--name", default=None, help="name to override (default: the config's first intercepted name)")
def snippet_command(kind: str, address: str | None, name: str | None) -> None:
    """Print the lines that make your own resolver send the scale here, IPv6 leak included."""
    rules = load(household=False).dns.intercept
    first = rules[0] if rules else None
    try:
        chosen_name = normalise_name(name or (first.name if first else "scalews.withings.net"))
    except ValueError as error:
        raise UserError(f"--name: {error}", EXIT_CONFIG) from None
    chosen = address or (first.address if first and first.address != "auto" else None) or _this_machine_ipv4()
    try:
        ipaddress.IPv4Address(chosen)
    except ValueError:
        raise UserError(f"--address '{chosen}' is not an IPv4 address; write e.g. --address 192.168.1.10",
                        EXIT_CONFIG) from None
    click.echo(snippet(kind, chosen_name, chosen), nl=False)
