"""The one error type the vendor-cloud importers raise for what a user can act on.

Its text is the sentence the command prints: what went wrong and what to do. It never contains a
password, token, key or code the user typed; the CLI prints it as one line and exits non-zero.
"""

from __future__ import annotations


class CloudError(Exception):
    """A sign-in, a request or an answer that did not work out; `str()` is the sentence for the user."""
