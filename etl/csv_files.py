"""Streaming, row-level reads of CSV files as all-text frames (parsing is the adapters' job).

One reader for every CSV source (crashes, NOAA weather, traffic counts). A file is read in
blocks of whole lines; each block yields a frame of the rows that parse and a ``rejects`` frame
(``record_key`` = ``"line N"``, ``reason``, ``raw`` = the line as written) of the lines that are
not rows, so one bad line never costs the file:

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
and every other line loads.

Speed: Arrow parses every block. A block that is valid UTF-8, has no bare carriage return and
does not end inside quotes goes to Arrow as it is, and is done if Arrow's row count matches the
line count (a ragged row is found by its text to get its line number). Otherwise (an open quote
merged lines, or a byte is not UTF-8) the lines are checked one by one with numpy, only the
suspect ones (odd number of quotes, bare carriage return) with Python's csv module; rejected
lines are blanked in place and Arrow parses the block again.
"""

from __future__ import annotations

import codecs
import csv
import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from core import schema as s
from etl.crashes import CrashShapeError, RawCrashBatch, detect_csv_shape
from etl.rejects import cap_text, concat_rejects, empty_rejects

DEFAULT_BLOCK_BYTES: Final = 64 << 20
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
_SPACE: Final = b" \t\r\n\x00"
_NOT_SPACE: Final = re.compile(rb"[^ \t\r\n\x00]")
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


class CsvFileError(ValueError):
    """A file that cannot be read as CSV at all; ``str(exc)`` names the file and the cause."""


@dataclass(frozen=True)
class CsvBlock:
    """Rows of one block, as text, and the lines that are not rows, with reasons."""

    frame: pd.DataFrame  # one str column per header name; blanks are ""
    rejects: pd.DataFrame = field(default_factory=empty_rejects)  # record_key, reason, raw

    @property
    def rows_in(self) -> int:
        return len(self.frame) + len(self.rejects)


# ------------------------------------------------------------------------------------------
# bytes to blocks of whole UTF-8 lines


def _codec(encoding: str | None) -> str:
    """The codec for an encoding setting (none or "auto": UTF-8, unless a BOM says otherwise)."""
    if not encoding or encoding.lower() == "auto":
        return "utf-8"
    try:
        name = codecs.lookup(encoding).name
    except LookupError as exc:
        raise CsvFileError(f"unknown encoding {encoding!r} (try utf-8, cp1252 or latin-1)") from exc
    return {"utf-8-sig": "utf-8", "utf-16": "utf-16-le", "utf-32": "utf-32-le"}.get(name, name)


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except FileNotFoundError as exc:
        raise CsvFileError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise CsvFileError(f"{path}: is a folder, not a file") from exc
    except OSError as exc:
        raise CsvFileError(f"{path}: cannot be opened ({exc.strerror or exc})") from exc


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


def _line_blocks(chunks: Iterator[bytes], block_bytes: int) -> Iterator[tuple[bytearray, bool]]:
    """``(block, last)``: about ``block_bytes`` each, cut after a newline (all but the last)."""
    pending = bytearray()
    for chunk in chunks:
        pending += chunk
        if len(pending) < block_bytes:
            continue
        cut = pending.rfind(b"\n") + 1
        if cut == 0:  # one line longer than a block: read on
            continue
        block, pending = pending, pending[cut:]
        del block[cut:]
        yield block, False
    yield pending, True


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


# ------------------------------------------------------------------------------------------
# the reader


class CsvReader:
    """Open ``path``, settle its encoding and read its header; iterate for ``CsvBlock``s.

    Whole-file problems raise ``CsvFileError`` naming the file: missing, a folder, empty, a
    header line that does not parse or repeats a name.
    """

    def __init__(
        self,
        path: Path | str,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        *,
        encoding: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.block_bytes = max(1, block_bytes)
        codec = _codec(encoding)
        self._handle = _open(self.path)
        try:
            self._start(codec)
        except BaseException:
            self._handle.close()
            raise

    def _start(self, codec: str) -> None:
        head = self._handle.read(4)
        skip = 0
        for bom, name in _BOMS:
            if head.startswith(bom):
                skip, codec = len(bom), name
                break
        self.encoding = _LABELS.get(codec, codec)
        self._handle.seek(skip)
        chunks = _chunks(self._handle, codec, self.block_bytes)
        self._blocks = _line_blocks(chunks, self.block_bytes)
        data, last = next(self._blocks)
        if last and _NOT_SPACE.search(data) is None:
            raise CsvFileError(f"{self.path}: the file is empty")
        end = data.find(b"\n") + 1 or len(data)
        if not data[:end].strip(_SPACE):
            raise CsvFileError(f"{self.path}: the first line is blank, not a header")
        self.header = self._parse_header(bytes(data[:end]))
        del data[:end]
        self._first = (data, last)

    def _parse_header(self, line: bytes) -> list[str]:
        if not _is_utf8(line):
            raise CsvFileError(
                f"{self.path}: the header line is not valid {self.encoding}"
                " (for a legacy Windows export set VZ_CSV_ENCODING=cp1252)"
            )
        text = line.decode("utf-8").removesuffix("\n").removesuffix("\r")
        if "\r" in text:
            raise CsvFileError(
                f"{self.path}: lines end in a bare carriage return (old Mac style);"
                " save the file with LF or CRLF line ends"
            )
        try:
            header = next(csv.reader([text], strict=True))
        except csv.Error as exc:
            raise CsvFileError(f"{self.path}: cannot read the header line ({exc})") from exc
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise CsvFileError(
                f"{self.path}: the header repeats a column name ({', '.join(repeated)})"
            )
        return header

    def close(self) -> None:
        self._handle.close()

    def __iter__(self) -> Iterator[CsvBlock]:
        try:
            parser = _BlockParser(self.header, self.encoding)
            data, last = self._first
            line = 2
            while True:
                newlines = data.count(b"\n")  # before parse blanks rejected lines in place
                block, carry = parser.parse(data, line, final=last, newlines=newlines)
                line += newlines - carry.count(b"\n")
                if block.rows_in:
                    yield block
                if last:
                    return
                data, last = next(self._blocks)
                if carry:
                    data[:0] = carry
        finally:
            self._handle.close()


# ------------------------------------------------------------------------------------------
# one block


Reject = tuple[int, str, bytes]  # line number, reason, the line as written


class _BlockParser:
    """Rows and rejects of one block of whole lines."""

    def __init__(self, header: Sequence[str], encoding: str) -> None:
        self.header = list(header)
        self.encoding = encoding
        self._invalid: list[tuple[str, int]] = []
        self._read_options = pacsv.ReadOptions(
            column_names=self.header, autogenerate_column_names=False, block_size=16 << 20
        )
        self._convert_options = pacsv.ConvertOptions(
            column_types=dict.fromkeys(self.header, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            check_utf8=False,  # checked before
        )

    def parse(
        self, data: bytearray, first_line: int, *, final: bool, newlines: int
    ) -> tuple[CsvBlock, bytes]:
        """Rows and rejects of ``data`` (whole lines, ``newlines`` of them, the first numbered
        ``first_line``), and the lines to carry into the next block (a quoted value still open
        at the end of this one). Rejected lines of ``data`` may be blanked in place."""
        if _is_blank(data):
            return CsvBlock(self._empty_frame()), b""
        lines = _Lines(data)
        if _is_utf8(data) and not _has_bare_cr(data) and not _ends_inside_quotes(data):
            table = self._arrow(data, multiline=False)
            if table is not None:
                found = table.num_rows + len(self._invalid)
                total = newlines + (data[-1:] != b"\n")
                if found == total or found == lines.rows():
                    ragged = self._ragged(lines, first_line)
                    if ragged is not None:
                        return CsvBlock(_to_frame(table), _reject_frame(ragged)), b""
        return self._line_by_line(lines, first_line, final=final)

    def _on_invalid(self, row: pacsv.InvalidRow) -> str:
        self._invalid.append((row.text, row.actual_columns))
        return "skip"

    def _arrow(self, data: bytearray, *, multiline: bool) -> pa.Table | None:
        self._invalid = []
        options = pacsv.ParseOptions(
            newlines_in_values=multiline, invalid_row_handler=self._on_invalid
        )
        try:
            return pacsv.read_csv(
                pa.BufferReader(pa.py_buffer(data)),
                read_options=self._read_options,
                parse_options=options,
                convert_options=self._convert_options,
            )
        except pa.ArrowInvalid:
            return None

    def _line_by_line(
        self, lines: _Lines, first_line: int, *, final: bool
    ) -> tuple[CsvBlock, bytes]:
        keep, continues, rejects, carry_from = self._check_lines(lines, final=final)
        carry = b""
        if carry_from is not None:
            carry = bytes(lines.data[lines.starts[carry_from] :])
            keep[carry_from:] = False
        rejected = [(first_line + i, reason, raw) for i, reason, raw in rejects]
        lines.set_records(keep & ~continues & ~lines.blank, continues)
        lines.blank_out(~keep)
        if not len(lines.records):
            return CsvBlock(self._empty_frame(), _reject_frame(rejected)), carry
        table = self._arrow(lines.data, multiline=bool(continues.any()))
        if table is not None and table.num_rows + len(self._invalid) == len(lines.records):
            ragged = self._ragged(lines, first_line)
            if ragged is not None:
                return CsvBlock(_to_frame(table), _reject_frame(rejected + ragged)), carry
        # Arrow disagrees with the line checks (odd quoting): Python's csv module decides
        frame, more = self._python_parse(lines, first_line)
        return CsvBlock(frame, _reject_frame(rejected + more)), carry

    def _ragged(self, lines: _Lines, first_line: int) -> list[Reject] | None:
        """The rows Arrow found ragged, with their line numbers; None if they are not found."""
        found = lines.find([text for text, _ in self._invalid])
        if found is None:
            return None
        fields = {text.encode("utf-8", "surrogateescape"): n for text, n in self._invalid}
        return [
            (first_line + i, self._count_reason(fields[raw]) or "malformed row", raw)
            for i, raw in found
        ]

    def _check_lines(
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
            reason = self._python_check(lines.line(i))
            if reason is None:
                continue
            if reason == UNBALANCED_QUOTE:
                after = int(np.searchsorted(openers, i, side="right"))
                j = int(openers[after]) if after < len(openers) else count
                if j - i <= MAX_RECORD_LINES:
                    if j == count and not final:  # the value may go on in the next block
                        return keep, continues, [r for r in rejects if r[0] < i], i
                    group = lines.join(i, j + 1, keep) if j < count else b""
                    if group and self._python_check(group, lenient=False) is None:
                        continues[i + 1 : j + 1] = keep[i + 1 : j + 1]
                        k = int(np.searchsorted(suspects, j, side="right"))
                        continue
            rejects.append((i, reason, lines.line(i)))
            keep[i] = False
        return keep, continues, rejects, None

    def _python_check(self, record: bytes, *, lenient: bool = True) -> str | None:
        """Why a record (a line, or the lines of one quoted value) is not one row; None if it is."""
        fields, reason = _python_fields(record, lenient=lenient)
        return reason or self._count_reason(len(fields))

    def _count_reason(self, fields: int) -> str | None:
        expected = len(self.header)
        if fields == expected:
            return None
        return f"malformed row: {fields} field{'s' * (fields != 1)}, expected {expected}"

    def _python_parse(self, lines: _Lines, first_line: int) -> tuple[pd.DataFrame, list[Reject]]:
        rows: list[list[str]] = []
        rejects: list[Reject] = []
        starts, ends = lines.record_spans()
        for i, start, end in zip(
            lines.records.tolist(), starts.tolist(), ends.tolist(), strict=True
        ):
            record = bytes(lines.data[start:end])
            fields, reason = _python_fields(record)
            reason = reason or self._count_reason(len(fields))
            if reason is None:
                rows.append(fields)
            else:
                rejects.append((first_line + i, reason, record))
        if not rows:
            return self._empty_frame(), rejects
        return pd.DataFrame(rows, columns=self.header, dtype="str"), rejects

    def _empty_frame(self) -> pd.DataFrame:
        return pd.DataFrame({name: pd.Series(dtype="str") for name in self.header})


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


def _to_frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas()


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


# ------------------------------------------------------------------------------------------
# whole files and the crash reader


def read_header(path: Path | str, *, encoding: str | None = None) -> list[str]:
    reader = CsvReader(path, encoding=encoding)
    reader.close()
    return reader.header


def read_csv_blocks(
    path: Path | str, block_bytes: int = DEFAULT_BLOCK_BYTES, *, encoding: str | None = None
) -> Iterator[CsvBlock]:
    """Every row of ``path`` as text, in blocks of about ``block_bytes`` of input."""
    yield from CsvReader(path, block_bytes, encoding=encoding)


def read_csv_file(
    path: Path | str,
    *,
    required: Sequence[str] = (),
    encoding: str | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> CsvBlock:
    """The whole file as one block; ``required`` columns are matched case-insensitively."""
    reader = CsvReader(path, block_bytes, encoding=encoding)
    present = {name.strip().lower() for name in reader.header}
    missing = [name for name in required if name.strip().lower() not in present]
    if missing:
        reader.close()
        raise CsvFileError(
            f"{reader.path}: missing column{'s' * (len(missing) > 1)} {', '.join(missing)}"
            f" (the header has {', '.join(reader.header)})"
        )
    blocks = list(reader)
    if not blocks:
        return CsvBlock(pd.DataFrame({name: pd.Series(dtype="str") for name in reader.header}))
    frame = pd.concat([block.frame for block in blocks], ignore_index=True)
    return CsvBlock(frame, concat_rejects(*(block.rejects for block in blocks)))


def crash_csv_batches(
    path: Path | str, block_bytes: int = DEFAULT_BLOCK_BYTES, *, encoding: str | None = None
) -> Iterator[RawCrashBatch]:
    """Crash rows in batches, each with the lines of its block that are not rows."""
    reader = CsvReader(path, block_bytes, encoding=encoding)
    try:
        shape = detect_csv_shape(reader.header)
    except CrashShapeError as exc:
        reader.close()
        raise CrashShapeError(f"{reader.path}: {exc}") from exc
    for block in reader:
        yield RawCrashBatch(frame=block.frame, shape=shape, rejects=block.rejects)
