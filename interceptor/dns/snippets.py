"""Config snippets for users who keep their own resolver and only need the one name overridden.

Each snippet answers the name with the server's IPv4 address and also stops the other query types
(AAAA, HTTPS) from being forwarded to the real resolvers, which would let a dual-stack device reach
the vendor cloud over IPv6. Which lines do that differs per resolver; the facts are from
reference §2 (dnsmasq ≥ 2.86 needs `local=`, Unbound's `local-data` already answers NODATA, CoreDNS
`hosts` and AdGuard rewrites already answer NODATA, BIND RPZ rewrites the whole name). The dnsmasq,
OpenWrt and Unbound snippets are run for real by the tests.
"""

from __future__ import annotations

from collections.abc import Callable

KINDS = ("dnsmasq", "unbound", "pihole", "adguard", "openwrt", "bind", "coredns")


def _dnsmasq(name: str, address: str) -> str:
    return f"""\
# /etc/dnsmasq.d/scale-interceptor.conf  (then: systemctl restart dnsmasq)
# {name} and every name below it -> the scale server
address=/{name}/{address}
# Since dnsmasq 2.86 other types (AAAA, HTTPS) are forwarded upstream unless the domain is local:
# this line makes them an empty answer, so nothing can reach the real cloud over IPv6.
local=/{name}/
"""


def _unbound(name: str, address: str) -> str:
    return f"""\
# /etc/unbound/unbound.conf.d/scale-interceptor.conf  (then: systemctl restart unbound)
server:
    # Only A is given, so Unbound answers every other type (AAAA, HTTPS) with an empty NOERROR.
    local-data: "{name}. 300 IN A {address}"
"""


def _pihole(name: str, address: str) -> str:
    return f"""\
# Pi-hole v6: /etc/pihole/pihole.toml, [misc] section (or: Settings > All settings > misc.dnsmasq_lines)
[misc]
  dnsmasq_lines = [
    "address=/{name}/{address}",
    "local=/{name}/",   # other types (AAAA, HTTPS) get an empty answer instead of going upstream
  ]
# Pi-hole v5: put the two lines above, without quotes, in /etc/dnsmasq.d/05-scale-interceptor.conf
# and run: pihole restartdns
"""


def _adguard(name: str, address: str) -> str:
    return f"""\
# AdGuard Home: AdGuardHome.yaml (or the UI: Filters > DNS rewrites > Add: {name} -> {address})
filtering:
  rewrites:
    - domain: {name}
      answer: {address}
      enabled: true
# A rewrite with no AAAA/HTTPS entry makes AdGuard answer those types with an empty answer,
# so no extra line is needed against the IPv6 leak.
"""


def _openwrt(name: str, address: str) -> str:
    return f"""\
# OpenWrt (dnsmasq through UCI); run on the router:
uci add_list dhcp.@dnsmasq[0].address='/{name}/{address}'
# answer other types (AAAA, HTTPS) locally with an empty answer instead of forwarding them:
uci add_list dhcp.@dnsmasq[0].server='/{name}/'
uci commit dhcp
/etc/init.d/dnsmasq restart
"""


def _bind(name: str, address: str) -> str:
    return f"""\
// BIND 9 response policy zone. In named.conf.options, inside options {{ }}:
//     response-policy {{ zone "rpz.local"; }};
// In named.conf.local:
zone "rpz.local" {{ type master; file "/etc/bind/db.rpz.local"; allow-query {{ none; }}; }};

; /etc/bind/db.rpz.local  (then: rndc reload)
; The policy replaces the whole name: types without a record here (AAAA, HTTPS) get an empty answer.
$TTL 300
@ IN SOA localhost. root.localhost. (1 1h 15m 30d 2h)
  IN NS localhost.
{name} IN A {address}
"""


def _coredns(name: str, address: str) -> str:
    return f"""\
# CoreDNS Corefile: put the hosts block first in your existing server block
. {{
    hosts {{
        {address} {name}
        fallthrough
    }}
    # hosts answers other types of {name} (AAAA, HTTPS) with an empty answer, not upstream.
    forward . /etc/resolv.conf
    cache 300
}}
"""


_RENDERERS: dict[str, Callable[[str, str], str]] = {
    "dnsmasq": _dnsmasq,
    "unbound": _unbound,
    "pihole": _pihole,
    "adguard": _adguard,
    "openwrt": _openwrt,
    "bind": _bind,
    "coredns": _coredns,
}


def snippet(kind: str, name: str, address: str) -> str:
    """The snippet for resolver `kind` (one of KINDS); name and address must already be validated."""
    return _RENDERERS[kind](name, address)
