"""Which format a file is in, told from its content (never its name), and the reader for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from interceptor.importers import fitbit, mifitness, openscale, smartscale, withings, zepp
from interceptor.importers.files import Archive, Data, is_zip
from interceptor.importers.records import FormatError, ReadOptions, Row

Reader = Callable[[Data, str, ReadOptions], Iterator[object]]


@dataclass(frozen=True)
class Format:
    """`name` is what `--format` takes; `device` the stable prefix of the device id its weigh-ins are
    stored under (with the person: `zepp-life:fra`)."""

    name: str
    title: str
    device: str
    looks_like: Callable[[Data, list[str] | None], bool]
    read: Reader
    names_people: bool = False  # rows say whose they are (a height, a name); else one file, one person
    # The rows `read` yields (or its FormatError), found without mapping them, for formats whose rows
    # can only become records or refusals; else the rows are read to be counted.
    count: Callable[[Data, str, ReadOptions], int] | None = None


FORMATS = (
    Format(zepp.NAME, zepp.TITLE, "zepp-life", zepp.looks_like, zepp.read, names_people=True, count=zepp.count),
    Format(withings.NAME, withings.TITLE, "withings-export", withings.looks_like, withings.read),
    Format(fitbit.NAME, fitbit.TITLE, "fitbit", fitbit.looks_like, fitbit.read),
    Format(mifitness.NAME, mifitness.TITLE, "mi-fitness", mifitness.looks_like, mifitness.read),
    Format(smartscale.NAME, smartscale.TITLE, "smartscaleconnect", smartscale.looks_like, smartscale.read,
           names_people=True),
    Format(openscale.NAME, openscale.TITLE, "openscale", openscale.looks_like, openscale.read),
)
BY_NAME = {item.name: item for item in FORMATS}
NAMES = tuple(BY_NAME)
WITHINGS_OTHER = "withings-other"  # other.csv: joined to a weight.csv, never read alone

_KNOWN = ", ".join(item.title for item in FORMATS)


def detect(data: Data, name: str) -> str:
    """The format's name, `WITHINGS_OTHER` for a Withings other.csv, or a FormatError that says
    what the file looked like."""
    members = None
    if is_zip(data):
        members = Archive(data, name, None).names()  # names are readable without the password
    for item in FORMATS:
        if item.looks_like(data, members):
            return item.name
    if members is None and withings.is_other_file(data):
        return WITHINGS_OTHER
    if members is not None:
        shown = ", ".join(members[:3]) + (", ..." if len(members) > 3 else "")
        raise FormatError(f"{name}: a zip this importer does not know ({shown or 'empty'}); it reads: {_KNOWN}")
    first = bytes(data[:80]).split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    raise FormatError(f"{name}: not a file this importer knows (it starts {first[:60]!r}); it reads: {_KNOWN}")


ZIPPED = {zepp.NAME, withings.NAME, fitbit.NAME}  # formats that may come as a zip archive


def read(format_name: str, data: Data, name: str, options: ReadOptions,
         other: tuple[bytes, str] | None = None) -> Iterator[Row | mifitness.Ignored]:
    """The rows of a file in a known format (a Withings weight.csv with its other.csv, if given)."""
    if is_zip(data) and format_name not in ZIPPED:
        raise FormatError(f"{name}: a zip archive, but a {BY_NAME[format_name].title} is a plain CSV file")
    if format_name == withings.NAME:
        return withings.read(data, name, options, other)
    return BY_NAME[format_name].read(data if is_zip(data) else bytes(data), name, options)  # type: ignore[return-value]


def count(format_name: str, data: Data, name: str, options: ReadOptions) -> int | None:
    """The rows `read` would yield (or its FormatError), for a format that can count them without
    mapping them; None for the others."""
    counter = BY_NAME[format_name].count
    if counter is None or (is_zip(data) and format_name not in ZIPPED):
        return None
    return counter(data if is_zip(data) else bytes(data), name, options)
