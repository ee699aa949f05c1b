"""Line-level checks of CSV blocks: which lines are rows, and why the others are not.

A line that is not a row is rejected with a reason:

- too few or too many fields: ``malformed row: 5 fields, expected 29``;
- a quote that opens a field and never closes (it would swallow the lines after it):
  ``malformed row: unbalanced quote``;
- a carriage return alone inside an unquoted field: ``malformed row: stray carriage return``;
- bytes that are not valid in the file's encoding: ``not valid UTF-8`` (or ``UTF-16``, …).

Blank lines are skipped: they are no row. A quoted value may span lines (RFC 4180) if the
record it completes is well formed and has the header's number of fields, within
``MAX_RECORD_LINES`` lines; otherwise the line that opened it is rejected and reading goes on
with the next line. Text after a closing quote joins the field (``"a"b`` reads ``ab``), as
Arrow and Python's csv module both read it.

Encodings: a byte-order mark decides (UTF-8, UTF-16 or UTF-32, LE or BE); without one the file
is UTF-8, or the ``encoding`` asked for (``VZ_CSV_ENCODING``: ``cp1252``, ``latin-1``, … for a
legacy Windows export). Nothing is guessed: a UTF-8 file with a stray latin-1 byte and a cp1252
file with one accent are the same bytes; by default the line is rejected as ``not valid UTF-8``
and every other line loads. Other encodings are transcoded to UTF-8 as they are read.
"""

from __future__ import annotations

import codecs
import csv
import functools
import re
from collections.abc import Iterator, Sequence
from typing import BinaryIO, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core import schema as s
from etl.rejects import cap_text, empty_rejects

MAX_RECORD_LINES: Final = 100  # a quoted value spanning more lines is an unbalanced quote
RAW_LINE_MAX_CHARS: Final = 2_000  # a rejected line is stored up to this length

UNBALANCED_QUOTE: Final = "malformed row: unbalanced quote"
STRAY_CR: Final = "malformed row: stray carriage return"

_BOMS: Final = (  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_LABELS: Final = {  # codec -> how a reason names it
    "utf-8": "UTF-8",
    "utf-16-le": "UTF-16",
    "utf-16-be": "UTF-16",
    "utf-32-le": "UTF-32",
    "utf-32-be": "UTF-32",
}
_QUOTE: Final = ord('"')
_NEWLINE: Final = ord("\n")
_CR: Final = ord("\r")
_NOT_NEWLINE: Final = re.compile(rb"[^\r\n]")
_SCAN_BYTES: Final = 4 << 20  # numpy scans a block in slices: no 64 MB temporaries
# While transcoding, an undecodable source byte becomes U+DCFF, written out as the byte 0xFF:
# never valid UTF-8, so the line it is on is rejected like any other undecodable line.
_MARK_ERRORS: Final = "vz-csv-mark"


def _mark_undecodable(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "\udcff" * (exc.end - exc.start), exc.end


codecs.register_error(_MARK_ERRORS, _mark_undecodable)


def _chunks(handle: BinaryIO, codec: str, size: int) -> Iterator[bytes]:
    """The file's bytes as UTF-8 (transcoded unless ``codec`` is UTF-8), ``size`` at a time."""
    if codec == "utf-8":
        while raw := handle.read(size):
            yield raw
        return
    decoder = codecs.getincrementaldecoder(codec)(_MARK_ERRORS)
    while True:
        raw = handle.read(size)
        text = decoder.decode(raw, final=not raw)
        if text:
            yield text.encode("utf-8", "surrogateescape")
        if not raw:
            return


def _is_utf8(data: bytes | bytearray) -> bool:
    if data.isascii():
        return True
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    try:
        pa.LargeStringArray.from_buffers(1, offsets, pa.py_buffer(data)).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _positions(values: np.ndarray, byte: int, *, or_above: bool = False) -> np.ndarray:
    """Offsets of ``byte`` (or of any byte from it up) in ``values``, scanned in slices so that
    no block-sized temporary is made (its page faults cost more than the scan)."""
    found = [
        np.flatnonzero(part >= byte if or_above else part == byte) + start
        for start in range(0, len(values), _SCAN_BYTES)
        for part in [values[start : start + _SCAN_BYTES]]
    ]
    return np.concatenate(found) if found else np.empty(0, dtype=np.int64)


Reject = tuple[int, str, bytes]  # line number, reason, the line as written


class LineChecks:
    """Why a line of a block is not a row: its encoding, its quotes, its number of fields."""

    def __init__(self, header: Sequence[str], encoding: str) -> None:
        self.header = list(header)
        self.encoding = encoding

    def check_lines(
        self, lines: _Lines, *, final: bool
    ) -> tuple[np.ndarray, np.ndarray, list[Reject], int | None]:
        """Lines to keep, lines that continue a multi-line record, rejects by line index, and
        the line that opens a record still open at the end of a block that is not the last."""
        count = len(lines.starts)
        continues = np.zeros(count, dtype=bool)
        bad = lines.undecodable()
        keep = ~bad
        rejects = [
            (i, f"not valid {self.encoding}", lines.line(i)) for i in np.flatnonzero(bad).tolist()
        ]
        odd = lines.odd_quotes() & keep
        suspects = np.flatnonzero(odd | (lines.bare_cr() & keep))
        openers = np.flatnonzero(odd)
        k = 0
        while k < len(suspects):
            i = int(suspects[k])
            k += 1
            reason = self.python_check(lines.line(i))
            if reason is None:
                continue
            if reason == UNBALANCED_QUOTE:
                after = int(np.searchsorted(openers, i, side="right"))
                j = int(openers[after]) if after < len(openers) else count
                if j - i <= MAX_RECORD_LINES:
                    if j == count and not final:  # the value may go on in the next block
                        return keep, continues, [r for r in rejects if r[0] < i], i
                    group = lines.join(i, j + 1, keep) if j < count else b""
                    if group and self.python_check(group, lenient=False) is None:
                        continues[i + 1 : j + 1] = keep[i + 1 : j + 1]
                        k = int(np.searchsorted(suspects, j, side="right"))
                        continue
            rejects.append((i, reason, lines.line(i)))
            keep[i] = False
        return keep, continues, rejects, None

    def python_check(self, record: bytes, *, lenient: bool = True) -> str | None:
        """Why a record (a line, or the lines of one quoted value) is not one row; None if it is."""
        fields, reason = _python_fields(record, lenient=lenient)
        return reason or self.count_reason(len(fields))

    def count_reason(self, fields: int) -> str | None:
        expected = len(self.header)
        if fields == expected:
            return None
        return f"malformed row: {fields} field{'s' * (fields != 1)}, expected {expected}"


class _Lines:
    """The lines of a block, each with its newline, located with numpy when first needed.

    ``records`` are the lines that begin a row (all lines, until ``set_records`` says otherwise);
    a record ends with its last line, or with the last line of the quoted value it opens.
    """

    def __init__(self, data: bytearray) -> None:
        self.data = data
        self._bytes = np.frombuffer(data, dtype=np.uint8)
        self._records: np.ndarray | None = None
        self._last: np.ndarray | None = None

    @functools.cached_property
    def starts(self) -> np.ndarray:
        ends = _positions(self._bytes, _NEWLINE) + 1
        if len(ends) and ends[-1] == len(self.data):
            ends = ends[:-1]
        return np.concatenate([np.zeros(1, dtype=np.int64), ends.astype(np.int64)])

    @functools.cached_property
    def ends(self) -> np.ndarray:
        return np.append(self.starts[1:], len(self.data))

    @functools.cached_property
    def text_ends(self) -> np.ndarray:
        """Where each line's text ends: before its LF or CRLF."""
        starts, ends = self.starts, self.ends
        newline = self._bytes[ends - 1] == _NEWLINE
        crlf = newline & (ends - starts >= 2) & (self._bytes[np.maximum(ends - 2, 0)] == _CR)
        return ends - newline - crlf

    @functools.cached_property
    def blank(self) -> np.ndarray:
        """Lines with nothing but their line end (Arrow skips them; they are no row)."""
        return self.text_ends == self.starts

    def rows(self) -> int:
        return int(np.count_nonzero(~self.blank))

    @property
    def records(self) -> np.ndarray:
        return np.arange(len(self.starts)) if self._records is None else self._records

    def set_records(self, starts: np.ndarray, continues: np.ndarray) -> None:
        """Records begin on the lines ``starts`` and run on over the lines ``continues``."""
        index = np.arange(len(self.starts))
        member = np.where(starts | continues, index, -1)
        last_member = np.maximum.accumulate(member)
        self._records = np.flatnonzero(starts)
        following = np.append(self._records[1:], len(self.starts))
        self._last = last_member[following - 1]

    def record_spans(self) -> tuple[np.ndarray, np.ndarray]:
        """Byte offsets where each record's text begins and ends (line end excluded)."""
        records = self.records
        last = records if self._last is None else self._last
        return self.starts[records], self.text_ends[last]

    def line(self, i: int) -> bytes:
        return bytes(self.data[int(self.starts[i]) : int(self.ends[i])])

    def join(self, start: int, stop: int, keep: np.ndarray) -> bytes:
        return b"".join(self.line(j) for j in range(start, stop) if keep[j])

    def odd_quotes(self) -> np.ndarray:
        quotes = _positions(self._bytes, _QUOTE)
        before = np.searchsorted(quotes, np.append(self.starts, len(self.data)))
        return (np.diff(before) % 2).astype(bool)

    def bare_cr(self) -> np.ndarray:
        hits = np.zeros(len(self.starts), dtype=bool)
        if b"\r" not in self.data:
            return hits
        crs = _positions(self._bytes, _CR)
        following = np.append(self._bytes, _NEWLINE)[crs + 1]
        hits[self._line_of(crs[following != _NEWLINE])] = True
        return hits

    def undecodable(self) -> np.ndarray:
        """Lines that are not valid UTF-8 (only lines with a byte >= 0x80 are decoded)."""
        hits = np.zeros(len(self.starts), dtype=bool)
        if _is_utf8(self.data):
            return hits
        high = _positions(self._bytes, 0x80, or_above=True)
        for i in np.unique(self._line_of(high)).tolist():
            try:
                self.line(i).decode("utf-8")
            except UnicodeDecodeError:
                hits[i] = True
        return hits

    def _line_of(self, offsets: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.starts, offsets, side="right") - 1

    def blank_out(self, lines: np.ndarray) -> None:
        """Overwrite ``lines`` with newlines, in place: Arrow skips them as blank lines."""
        for i in np.flatnonzero(lines).tolist():
            self._bytes[self.starts[i] : self.ends[i]] = _NEWLINE

    def find(self, texts: list[str]) -> list[tuple[int, bytes]] | None:
        """``(line index, text)`` of the record of each of ``texts`` (rows Arrow found ragged,
        which it gives without line numbers); None unless they match records one to one."""
        if not texts:
            return []
        wanted = pa.array([t.encode("utf-8", "surrogateescape") for t in texts], pa.large_binary())
        starts, ends = self.record_spans()
        # one array over the block: record texts at even positions, what lies between at odd
        offsets = np.column_stack([starts, ends]).ravel().astype(np.int64)
        spans = pa.LargeBinaryArray.from_buffers(
            pa.large_binary(),
            len(offsets) - 1,
            [None, pa.py_buffer(offsets), pa.py_buffer(self.data)],
        )
        matched = pc.is_in(spans, value_set=wanted).to_numpy(zero_copy_only=False)[::2]
        hits = np.flatnonzero(matched)
        if len(hits) != len(texts):
            return None
        return [
            (int(self.records[h]), bytes(self.data[int(starts[h]) : int(ends[h])]))
            for h in hits.tolist()
        ]


def _record_text(record: bytes) -> str:
    """A record as text without its line end (undecodable bytes kept as surrogates)."""
    return record.decode("utf-8", "surrogateescape").removesuffix("\n").removesuffix("\r")


def _python_fields(record: bytes, *, lenient: bool = True) -> tuple[list[str], str | None]:
    """A record's fields as Python's csv module reads them, or why it cannot be one row.

    Strict, to find a quote that never closes; otherwise (``lenient``) as forgiving as Arrow
    with text after a closing quote (it joins the field), so both agree on every line.
    """
    text = _record_text(record)
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error as exc:
        if "new-line" in str(exc):
            return [], STRAY_CR
        if "end of data" in str(exc) or not lenient:
            return [], UNBALANCED_QUOTE
        try:
            rows = list(csv.reader([text]))
        except csv.Error:
            return [], STRAY_CR
    return (rows[0] if rows else []), None


def _ends_inside_quotes(data: bytearray) -> bool:
    """Whether the last line that is not blank has an odd number of quotes: a quoted value may
    go on in the next block. (Anywhere else an open quote makes Arrow merge lines, which the row
    count shows.)"""
    end = len(data)
    while end and data[end - 1] in b"\r\n":
        end -= 1
    return data.count(b'"', data.rfind(b"\n", 0, end) + 1, end) % 2 == 1


def _is_blank(data: bytearray) -> bool:
    """Nothing but line ends (no row, no reject)."""
    return _NOT_NEWLINE.search(data) is None


def _has_bare_cr(data: bytearray) -> bool:
    return b"\r" in data and data.count(b"\r") != data.count(b"\r\n")


def _reject_frame(rejects: list[Reject]) -> pd.DataFrame:
    """Rejects in line order: ``record_key`` is ``"line N"``, ``raw`` the line as text."""
    if not rejects:
        return empty_rejects()
    rejects = sorted(rejects, key=lambda r: r[0])
    return pd.DataFrame(
        {
            s.RECORD_KEY: [f"line {line}" for line, _, _ in rejects],
            s.REASON: [reason for _, reason, _ in rejects],
            s.RAW: [_raw_line(raw) for _, _, raw in rejects],
        },
        dtype="str",
    )


def _raw_line(raw: bytes) -> str:
    """A rejected line as text: undecodable bytes as ``\\xNN``, no line end, no NUL, capped."""
    text = raw.decode("utf-8", "backslashreplace").removesuffix("\n").removesuffix("\r")
    return cap_text(text.replace("\x00", "\\x00"), RAW_LINE_MAX_CHARS)
