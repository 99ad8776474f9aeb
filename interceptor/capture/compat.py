"""Is our reply one the scale would take where it took the recorded one?

A scale's firmware parses the reply with a small embedded JSON reader and a fixed HTTP client: what
can break it is a different `status`, a key it looks for that is missing, a value of another JSON
type, or a different framing (chunked versus Content-Length). Values themselves differ by nature
(session ids, nonces, clock fields), so they are not compared. JSON numbers are one type: the wire
does not distinguish `2` from `2.0` and neither does a JSON reader that keeps numbers as doubles.
"""

from __future__ import annotations

from typing import Any

from interceptor.capture.http import Message

# Keys the recorded reply may have and ours may lack on purpose, with the reason.
ABSENT_ON_PURPOSE: dict[str, str] = {
    "body.syp.blc": "the firmware image offer: this server never offers firmware (reference §1.3)",
}
MAX_DEPTH = 16


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "array" if isinstance(value, list) else "object"


def shape(document: Any, path: str = "", depth: int = 0) -> dict[str, str]:
    """Path → JSON type for every value; array elements share the path `name[]`, merged over all
    elements. An empty array contributes only its own path, so `[]` is compatible with any list."""
    found = {path or "$": _json_type(document)}
    if depth >= MAX_DEPTH:
        return found
    if isinstance(document, dict):
        for key, value in document.items():
            found.update(shape(value, f"{path}.{key}" if path else str(key), depth + 1))
    elif isinstance(document, list):
        for element in document:
            for element_path, kind in shape(element, f"{path}[]", depth + 1).items():
                if found.get(element_path, kind) != kind:
                    kind = "mixed"
                found[element_path] = kind
    return found


def _inside_empty_array(path: str, shape_a: dict[str, str], shape_b: dict[str, str]) -> bool:
    """Whether `path` is below an array that is empty on one side (nothing to compare there)."""
    position = path.find("[]")
    while position >= 0:
        element = path[:position + 2]
        if element not in shape_a or element not in shape_b:
            return True
        position = path.find("[]", position + 2)
    return False


def differences(recorded: Message, replayed: Message) -> list[str]:
    """What differs in ways the scale could notice; empty when compatible."""
    found: list[str] = []
    if recorded.status != replayed.status:
        found.append(f"HTTP status {recorded.status} recorded, {replayed.status} replayed")
    if recorded.framing != replayed.framing:
        found.append(f"framing {recorded.framing} recorded, {replayed.framing} replayed")
    ours, theirs = replayed.json(), recorded.json()
    if theirs is None:
        if ours is not None:
            found.append("recorded body is not JSON, replayed body is")
        return found
    if ours is None:
        found.append("replayed body is not JSON")
        return found
    if isinstance(theirs, dict) and isinstance(ours, dict) and theirs.get("status") != ours.get("status"):
        found.append(f"status {theirs.get('status')!r} recorded, {ours.get('status')!r} replayed")
    recorded_shape, replayed_shape = shape(theirs), shape(ours)
    for path, kind in recorded_shape.items():
        if path in ABSENT_ON_PURPOSE or _inside_empty_array(path, recorded_shape, replayed_shape):
            continue
        if path not in replayed_shape:
            found.append(f"missing {path} ({kind})")
        elif replayed_shape[path] != kind:
            found.append(f"{path} is {replayed_shape[path]}, recorded {kind}")
    found.extend(f"extra {path} ({kind})" for path, kind in replayed_shape.items()
                 if path not in recorded_shape and not _inside_empty_array(path, recorded_shape, replayed_shape))
    return found
