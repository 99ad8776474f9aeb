"""Body composition from a weigh-in and a person's profile: pure functions, no I/O, no clock.

One module per method family (`xiaomi`, `s400`, `literature`, `vendor`, `anthropometric`); `compose`
picks and combines them. Every metric carries the formula behind it (`method`) and how far it can
be trusted (`confidence`); every metric left out carries the reason. See docs/composition.md.
"""

from interceptor.composition.core import Composition, Options, Profile
from interceptor.composition.engine import METHOD_NAMES, calibration_offset, choose_method, compose

__all__ = [
    "METHOD_NAMES",
    "Composition",
    "Options",
    "Profile",
    "calibration_offset",
    "choose_method",
    "compose",
]
