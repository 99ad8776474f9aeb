"""`python -m interceptor.dns`: the same command as `interceptor dns`, usable on its own (the benchmark runs it)."""

from interceptor.dns.cli import dns_group

dns_group(prog_name="interceptor dns")
