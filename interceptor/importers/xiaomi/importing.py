"""`interceptor import xiaomi`: each history page parsed, attributed and sent through the import door.

A record becomes a reading of the scale it came from, named by the scale's Bluetooth MAC (upper
case, as interceptor/ble names it), so a weigh-in the gateway already stored and the cloud's copy of
it are one weigh-in: the cloud rule merges records of the same scale within a minute, whatever the
weights. Records typed into the app by hand (`reportFrom: UserEditor`) are not weigh-ins of the
scale: they are skipped, or with `--with-manual` imported under the device `xiaomi-app`, where they
never merge with a scale's weigh-in.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from interceptor.importers.cloud.door import Door
from interceptor.importers.cloud.members import Members, imported
from interceptor.importers.cloud.records import CloudRecord, Skip
from interceptor.importers.cloud.report import Progress
from interceptor.importers.records import Refusal
from interceptor.importers.summary import Summary
from interceptor.importers.xiaomi.client import XiaomiApi
from interceptor.importers.xiaomi.devices import CloudDevice
from interceptor.importers.xiaomi.history import Source, fitness_pages, home_pages
from interceptor.importers.xiaomi.records import fitness_record, home_record
from interceptor.pipeline import Imported, ImportResult
from interceptor.store.imports import MergeRule

log = logging.getLogger(__name__)

CLOUD_RULE = MergeRule(same="device", window_s=60, weight_kg=None)
MANUAL_DEVICE = "xiaomi-app"
SOURCES = {"home": "xiaomi-home", "fitness": "mi-fitness"}
MANUAL_SKIP = "typed in by hand in the app (reportFrom UserEditor); --with-manual imports it"


@dataclass(frozen=True)
class Options:
    since: datetime | None
    with_manual: bool
    now: datetime


def where(record: CloudRecord) -> str:
    return f"the record of {record.taken_at:%Y-%m-%d %H:%M:%S} UTC"


def count(summary: Summary, results: Sequence[ImportResult]) -> None:
    """The pipeline's outcomes into the summary; a record it refused as implausible is listed with why."""
    summary.count(result for result in results if result.outcome != "skipped")
    for result in results:
        if result.outcome == "skipped":
            summary.skip(Refusal(result.origin, result.reason or "not plausible"))


def device_id_for(record: CloudRecord, source: Source, by_did: dict[str, CloudDevice]) -> str:
    """The scale's MAC when the cloud's id for it is known, or when the history is one scale's;
    else the cloud's own id, so records of one unknown scale still stay together."""
    if record.manual:
        return MANUAL_DEVICE
    known = by_did.get(record.device or "")
    if known is not None and known.mac:
        return known.mac
    macs = {scale.mac for scale in source.scales if scale.mac}
    if len(macs) == 1 and record.device is None:
        return macs.pop()
    return f"xiaomi:{record.device or source.model or 'unknown'}"


def _pages(api: XiaomiApi, source: Source, options: Options) -> AsyncIterator[list[Any]]:
    since_s = int(options.since.timestamp()) if options.since else None
    now_s = int(options.now.timestamp())
    if source.service == "home":
        assert source.model is not None
        return home_pages(api, source.model, now_s * 1000, since_s * 1000 if since_s is not None else None)
    return fitness_pages(api, now_s, since_s)


async def import_source(api: XiaomiApi, door: Door, members: Members, source: Source, devices: list[CloudDevice],
                        options: Options, progress: Progress) -> Summary:
    summary = Summary(*source.label(api.session.user_id))
    parse: Callable[[Any, datetime], CloudRecord | Skip] = home_record if source.service == "home" else fitness_record
    by_did = {device.did: device for device in devices}
    models = {device.mac: device.description for device in devices if device.mac}
    unknown: set[str] = set()
    previous: set[str] = set()  # keys of the page before: a boundary repeat is dropped, memory stays flat
    pages = 0
    async for page in _pages(api, source, options):
        pages += 1
        items: list[Imported] = []
        current: set[str] = set()
        for index, item in enumerate(page):
            record = parse(item, options.now)
            if isinstance(record, Skip):
                if record.other:
                    summary.ignored += 1
                else:
                    summary.skip(Refusal(f"page {pages} record {index + 1}", record.reason))
                continue
            if (options.since is not None and record.taken_at < options.since) or record.key in previous \
                    or record.key in current:
                continue
            current.add(record.key)
            unknown |= record.unknown
            if record.manual and not options.with_manual:
                summary.skip(Refusal(where(record), MANUAL_SKIP))
                continue
            device_id = device_id_for(record, source, by_did)
            items.append(imported(record, source=SOURCES[source.service], device_id=device_id,
                                  device_model=models.get(device_id) or source.model,
                                  user=members.person_for(record), received_at=options.now, origin=where(record)))
        count(summary, await door.send(items, CLOUD_RULE))
        progress.show(summary, pages)
        previous = current
    if unknown:
        log.info("xiaomi: %s records had fields this tool does not know, kept raw where numeric: %s",
                 summary.label, ", ".join(sorted(unknown))[:500])
    return summary
