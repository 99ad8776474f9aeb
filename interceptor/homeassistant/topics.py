"""Every MQTT topic we publish to or listen on, from the two configured prefixes.

Our own topics all end in `/state` three levels below `base_topic` (`person/<slug>/state`,
`device/<key>/state`, `household/unassigned/state`), so one subscription, `<base>/+/+/state`, reads
them all back when we connect; the read-back ends at a marker we publish on the same pattern.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_MAC = re.compile(r"^[0-9a-f]{12}$")


def device_key(device_id: str) -> str:
    """A topic level and id part for a device: the MAC's 12 hex digits, or a cleaned id with a short
    hash of the original (so two ids that clean to the same text stay apart)."""
    cleaned = re.sub(r"[^a-z0-9]", "", device_id.lower())
    if _MAC.match(cleaned):
        return cleaned
    digest = hashlib.sha256(device_id.encode("utf-8")).hexdigest()[:8]
    return f"{cleaned[:32]}_{digest}" if cleaned else digest


def object_slug(text: str) -> str:
    """`text` as the object part of a Home Assistant entity id: lower-case letters, digits and `_`."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "scale"


@dataclass(frozen=True)
class Topics:
    base: str
    prefix: str  # Home Assistant's discovery prefix

    @property
    def availability(self) -> str:
        return f"{self.base}/status"

    def person(self, slug: str) -> str:
        return f"{self.base}/person/{slug}/state"

    def device(self, device_id: str) -> str:
        return f"{self.base}/device/{device_key(device_id)}/state"

    @property
    def unassigned(self) -> str:
        return f"{self.base}/household/unassigned/state"

    @property
    def assign(self) -> str:
        """Where Home Assistant's select sends a claim."""
        return f"{self.base}/household/unassigned/assign"

    @property
    def states(self) -> str:
        """Matches every state topic above (and the read-back marker)."""
        return f"{self.base}/+/+/state"

    def marker(self, nonce: str) -> str:
        return f"{self.base}/sync/{nonce}/state"

    @property
    def home_assistant_status(self) -> str:
        """Home Assistant announces `online` here when it (re)starts (its birth message)."""
        return f"{self.prefix}/status"

    def discovery(self, node: str) -> str:
        return f"{self.prefix}/device/{node}/config"
