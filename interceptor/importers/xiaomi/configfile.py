"""Writing bind keys into the config file in place: `[ble.devices."MAC"]` added or updated.

tomlkit keeps everything else as the person wrote it: comments, order, blank lines, quoting. A
device's table is found whatever form its MAC key has (`8c:d0:...`, `8CD0B2...`); only `bind_key`
is set, and `model` when the table is new. The new text is validated as a whole config before it
replaces the file, atomically (a temporary file in the same directory, fsynced, renamed over), with
the file's mode (and owner, where allowed) kept; the running server sees the new modification time
and reloads `[ble]` without a restart (interceptor/ble/service.py).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from interceptor.config import ConfigError, load_config
from interceptor.importers.cloud.errors import CloudError
from interceptor.importers.xiaomi.devices import ble_mac


@dataclass(frozen=True)
class KeyUpdate:
    mac: str
    bind_key: str  # 32 hex digits
    model: str


def _devices_table(document: tomlkit.TOMLDocument) -> Any:
    if "ble" not in document:
        document["ble"] = tomlkit.table()
    ble = document["ble"]
    if "devices" not in ble:
        ble["devices"] = tomlkit.table(is_super_table=True)
    return ble["devices"]


def apply_updates(text: str, updates: list[KeyUpdate]) -> tuple[str, list[str]]:
    """The new file text and, per device, what changed (`added`, `updated`, `unchanged`)."""
    try:
        document = tomlkit.parse(text)
    except TOMLKitError as error:
        raise CloudError(f"the config file is not valid TOML ({error}); fix it, then run this again") from None
    devices = _devices_table(document)
    changes = []
    for update in updates:
        existing = next((key for key in devices if ble_mac(key) == update.mac), None)
        if existing is None:
            table = tomlkit.table()
            table["bind_key"] = update.bind_key
            table["model"] = update.model
            table.add(tomlkit.nl())
            devices[update.mac] = table
            changes.append(f"{update.mac}: added")
            continue
        table = devices[existing]
        current = str(table.get("bind_key", "")).lower().replace(" ", "").removeprefix("0x")
        if current == update.bind_key:
            changes.append(f"{update.mac}: unchanged")
            continue
        table["bind_key"] = update.bind_key
        changes.append(f"{update.mac}: bind key updated")
    return tomlkit.dumps(document), changes


def write_bind_keys(path: Path, updates: list[KeyUpdate]) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
        before = path.stat()
    except OSError as error:
        raise CloudError(f"cannot read the config file {path}: {error.strerror or error}") from None
    new_text, changes = apply_updates(text, updates)
    if new_text == text:
        return changes
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise CloudError(f"cannot write next to {path} ({error.strerror or error}): run this as the user who owns "
                         "the config file") from None
    try:
        os.fchmod(descriptor, stat.S_IMODE(before.st_mode))
        with contextlib.suppress(PermissionError):
            os.fchown(descriptor, before.st_uid, before.st_gid)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(new_text)
            file.flush()
            os.fsync(file.fileno())
        try:
            load_config(Path(temporary), environ={})
        except ConfigError as error:
            raise CloudError(f"the config with the new keys would not load, so {path} was left as it was: {error}") \
                from None
        os.replace(temporary, path)
        _sync_directory(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return changes


def _sync_directory(directory: Path) -> None:
    """The rename itself survives a power cut only once the directory is on disk."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
