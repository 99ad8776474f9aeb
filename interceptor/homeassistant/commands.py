"""What Home Assistant's "Assign latest weigh-in" select sends, parsed sans-I/O.

Our discovery config makes the select send `{"measurement_id": 17, "person": "Anna"}`: the weigh-in
it showed when the person was chosen, and the option chosen. An automation or a hand-written
`mosquitto_pub` may also send the bare option ("Anna") or a slug ("anna"), meaning the latest
unassigned weigh-in. The option for a guest marks the weigh-in as nobody's, no longer waiting.
Anything else is refused with a reason; nothing a publisher sends can raise anything but
`ClaimError`, and nothing it sends is quoted back unbounded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from interceptor.notices import excerpt as bounded_excerpt

MAX_PAYLOAD_BYTES = 1024
MAX_MEASUREMENT_ID = 2**63 - 1  # SQLite's largest rowid
EXCERPT_CHARS = 80


class ClaimError(ValueError):
    """A command we cannot act on; the message says why, with a bounded excerpt of the payload."""


@dataclass(frozen=True)
class Claim:
    person: str | None  # a slug of the household; None: a guest, not a household member
    measurement_id: int | None  # None: the latest unassigned weigh-in when the claim is handled


def excerpt(payload: bytes) -> str:
    """A payload as a message quotes it: the shared bounded excerpt (notices.excerpt), in quotes."""
    return f"'{bounded_excerpt(payload, EXCERPT_CHARS)}'"


def _person(value: str, labels: Mapping[str, str | None]) -> str | None:
    chosen = value.strip()
    if chosen in labels:
        return labels[chosen]
    if chosen in labels.values():
        return chosen
    options = ", ".join(sorted(labels)) or "nobody: the household has no people"
    raise ClaimError(f"{chosen[:EXCERPT_CHARS]!r} is not a person of the household (options: {options})")


def parse_claim(payload: bytes, labels: Mapping[str, str | None]) -> Claim:
    """`labels`: the select's options → person slugs, None for a guest (`discovery.option_labels`)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ClaimError(f"a claim of {len(payload)} bytes; at most {MAX_PAYLOAD_BYTES} are accepted")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ClaimError(f"a claim that is not UTF-8 text: {excerpt(payload)}") from None
    if not text.strip():
        raise ClaimError("an empty claim")
    if not text.lstrip().startswith("{"):
        return Claim(_person(text, labels), None)
    try:
        document = json.loads(text)
    except ValueError:
        raise ClaimError(f"a claim that is not valid JSON: {excerpt(payload)}") from None
    if not isinstance(document, dict) or not isinstance(document.get("person"), str):
        raise ClaimError(f'a claim must be {{"measurement_id": N, "person": "NAME"}}, not {excerpt(payload)}')
    identifier = document.get("measurement_id")
    if identifier is not None and (isinstance(identifier, bool) or not isinstance(identifier, int)
                                   or not 1 <= identifier <= MAX_MEASUREMENT_ID):
        raise ClaimError(f"measurement_id must be a weigh-in's id (a positive integer), not {excerpt(payload)}")
    return Claim(_person(document["person"], labels), identifier)
