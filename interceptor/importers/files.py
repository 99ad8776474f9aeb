"""Reading the containers export files come in: text in several encodings, CSV with a guessed
delimiter, and zip archives (WinZip-AES ones too) opened without trusting what their headers claim.

A zip member is inflated only if its declared size is under `MAX_MEMBER_BYTES`, and inflating it
stops at that limit whatever the header said: a member claiming 2 GB is refused by name, and one that
lies about its size is cut off, never inflated into memory.
"""

from __future__ import annotations

import codecs
import csv
import io
import mmap
import struct
import zlib
from collections.abc import Callable, Iterator

import pyzipper

from interceptor.importers.records import FormatError

# A decade of one household's weigh-ins is a few MB of CSV; a member over this is not a weight export.
MAX_MEMBER_BYTES = 64 * 1024 * 1024
# Members an archive may list before we stop looking (Fitbit exports hold thousands of small files).
MAX_MEMBERS = 100_000
# A CSV cell longer than this is not a number or a date.
MAX_FIELD_CHARS = 64 * 1024
DECODE_SLICE = 64 * 1024
ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"

csv.field_size_limit(MAX_FIELD_CHARS)




class MappedFile(mmap.mmap):
    """A file mapped read-only from disk (a zip can be gigabytes of other data): it reads, seeks and
    tells like a file, and zipfile also asks whether it can seek."""

    def seekable(self) -> bool:
        return True


# A file as readers take it: its bytes, or a large archive mapped from disk rather than read into memory.
Data = bytes | mmap.mmap


def is_zip(data: Data) -> bool:
    return data[:4] in (ZIP_MAGIC, EMPTY_ZIP_MAGIC)


def encoding_of(data: bytes, name: str) -> str:
    """The file's text encoding: UTF-8 (with or without the BOM Zepp writes), UTF-16 with a BOM (some
    Windows tools), else Windows-1252, the usual encoding of spreadsheets re-saved on Windows. Checked
    in slices, so a large file is never decoded whole just to find out."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = (("utf-16", "utf-16"),)
    else:  # utf-8-sig's incremental decoder lets a lone BOM prefix through at the end: check plain UTF-8
        candidates = (("utf-8", "utf-8-sig"), ("cp1252", "cp1252"))
    body = data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data
    for checked_as, encoding in candidates:
        decoder = codecs.getincrementaldecoder(checked_as)()
        try:
            for start in range(0, len(body), DECODE_SLICE):
                decoder.decode(body[start:start + DECODE_SLICE])
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return encoding
    raise FormatError(f"{name}: not text in UTF-8, UTF-16 or Windows-1252")


def first_line(data: Data) -> str:
    """The header line of a text file, for format detection (never more than 4 KB of it)."""
    head = bytes(data[:4096])
    encoding = "utf-16" if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"
    decoded = head.decode(encoding, "replace")
    return decoded.splitlines()[0] if decoded else ""


def csv_rows(data: bytes, name: str, delimiters: str = ",;\t") -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) for each non-empty row, decoded as it is read (the file is never held
    twice); the delimiter is the one the header uses most. A row the csv module cannot take becomes a
    FormatError naming the file and the line."""
    encoding = encoding_of(data, name)
    header = data[:4096].decode(encoding, "replace").split("\n", 1)[0]
    delimiter = max(delimiters, key=header.count)
    stream = io.TextIOWrapper(io.BytesIO(data), encoding=encoding, newline="")
    reader = csv.reader(stream, delimiter=delimiter, strict=True)
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise FormatError(f"{name} line {reader.line_num}: {error}") from None
        if any(cell.strip() for cell in cells):
            yield reader.line_num, cells


def columns(header: list[str]) -> dict[str, int]:
    """Header cells by name (trimmed of spaces and quotes), for readers that match columns by name."""
    return {cell.strip().strip('"').strip(): index for index, cell in enumerate(header)}


def cell(cells: list[str], index: int | None) -> str | None:
    return cells[index] if index is not None and index < len(cells) else None


class Archive:
    """A zip archive's member names, and bounded reads of its members."""

    def __init__(self, data: Data, name: str, password: bytes | None) -> None:
        self.name = name
        try:
            self._zip = pyzipper.AESZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
        except (pyzipper.BadZipFile, pyzipper.LargeZipFile, OSError, ValueError, EOFError, KeyError,
                NotImplementedError, struct.error) as error:
            raise FormatError(f"{name}: not a readable zip archive ({error})") from None
        infos = self._zip.infolist()
        if len(infos) > MAX_MEMBERS:
            raise FormatError(f"{name}: {len(infos)} members, more than {MAX_MEMBERS}; not an export of weigh-ins")
        self._infos = {info.filename: info for info in infos if not info.is_dir()}
        if password is not None:
            self._zip.setpassword(password)
        self._password = password

    def names(self) -> list[str]:
        return list(self._infos)

    def matching(self, wanted: Callable[[str], bool]) -> list[str]:
        return sorted(name for name in self._infos if wanted(name))

    def encrypted(self, member: str) -> bool:
        return bool(self._infos[member].flag_bits & 0x1)

    def read(self, member: str) -> bytes:
        """A member's bytes, refused by name if it claims (or turns out) to be over the limit."""
        info = self._infos[member]
        where = f"{self.name}: {member}"
        if info.file_size > MAX_MEMBER_BYTES:
            raise FormatError(f"{where} claims {info.file_size / 1e9:.1f} GB uncompressed, over the"
                              f" {MAX_MEMBER_BYTES // (1024 * 1024)} MB a weight export can be: not inflating it")
        if self.encrypted(member) and self._password is None:
            raise FormatError(f"{where} is password-protected: pass --password (the Zepp Life e-mail has it)")
        try:
            with self._zip.open(info) as stream:
                content = stream.read(MAX_MEMBER_BYTES + 1)
        except RuntimeError as error:  # zipfile's "Bad password for file"
            if "password" in str(error).lower():
                raise FormatError(f"{where}: wrong password") from None
            raise FormatError(f"{where}: {error}") from None
        except (pyzipper.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, KeyError, zlib.error,
                struct.error) as error:
            raise FormatError(f"{where}: damaged or truncated ({error})") from None
        if len(content) > MAX_MEMBER_BYTES:
            raise FormatError(f"{where} inflates to more than {MAX_MEMBER_BYTES // (1024 * 1024)} MB: not a weight"
                              " export; refusing it")
        return content
