"""How long-running commands run their event loop.

uvloop when installed: a C event loop, a third less CPU per scale conversation and per DNS query on
a small box (bench/conversation.py); asyncio's own loop otherwise. The BLE gateway keeps asyncio's
own loop: it forwards a few thousand frames a second at most and must stay under 40 MB.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)
