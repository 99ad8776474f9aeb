"""The `INTERCEPTOR_*` environment variables that are not config keys.

Every other `INTERCEPTOR_<SECTION>__<KEY>` variable sets a key of the config file (`interceptor.config`).
These few belong to a command instead; they are listed here, below the config and the gateway alike,
so that one environment file can serve a box that runs both the server and the gateway without the
server taking the gateway's variables for misspelt keys. Standard library only: the gateway imports it.
"""

from __future__ import annotations

PREFIX = "INTERCEPTOR_"
CONFIG_VARIABLE = "INTERCEPTOR_CONFIG"  # the config file, when --config is not given
GATEWAY_SERVER_VARIABLE = "INTERCEPTOR_GATEWAY_SERVER"  # `interceptor gateway --server`
GATEWAY_TOKEN_VARIABLE = "INTERCEPTOR_GATEWAY_TOKEN"  # the gateway's bearer token, never on a command line

NOT_CONFIG_KEYS = frozenset({CONFIG_VARIABLE, GATEWAY_SERVER_VARIABLE, GATEWAY_TOKEN_VARIABLE})
