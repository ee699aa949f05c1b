"""Streaming, row-level reads of CSV files as all-text frames (parsing is the adapters' job).

One reader for every CSV source (crashes, NOAA weather, traffic counts). A file is read in
blocks of whole lines; each block yields a frame of the rows that parse and a ``rejects`` frame
(``record_key`` = ``"line N"``, ``reason``, ``raw`` = the line as written) of the lines that are
not rows, so one bad line never costs the file. Which lines those are, and the encodings, are
in ``etl.csv_lines``.

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
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from etl.crashes import CrashShapeError, RawCrashBatch, detect_csv_shape
from etl.csv_lines import (
    _BOMS,
    _LABELS,
    LineChecks,
    Reject,
    _chunks,
    _ends_inside_quotes,
    _has_bare_cr,
    _is_blank,
    _is_utf8,
    _Lines,
    _python_fields,
    _reject_frame,
)
from etl.rejects import concat_rejects, empty_rejects

DEFAULT_BLOCK_BYTES: Final = 64 << 20
_SPACE: Final = b" \t\r\n\x00"
_NOT_SPACE: Final = re.compile(rb"[^ \t\r\n\x00]")


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


# one block


class _BlockParser:
    """Rows and rejects of one block of whole lines."""

    def __init__(self, header: Sequence[str], encoding: str) -> None:
        self.header = list(header)
        self._checks = LineChecks(header, encoding)
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
        keep, continues, rejects, carry_from = self._checks.check_lines(lines, final=final)
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
            (first_line + i, self._checks.count_reason(fields[raw]) or "malformed row", raw)
            for i, raw in found
        ]

    def _python_parse(self, lines: _Lines, first_line: int) -> tuple[pd.DataFrame, list[Reject]]:
        rows: list[list[str]] = []
        rejects: list[Reject] = []
        starts, ends = lines.record_spans()
        for i, start, end in zip(
            lines.records.tolist(), starts.tolist(), ends.tolist(), strict=True
        ):
            record = bytes(lines.data[start:end])
            fields, reason = _python_fields(record)
            reason = reason or self._checks.count_reason(len(fields))
            if reason is None:
                rows.append(fields)
            else:
                rejects.append((first_line + i, reason, record))
        if not rows:
            return self._empty_frame(), rejects
        return pd.DataFrame(rows, columns=self.header, dtype="str"), rejects

    def _empty_frame(self) -> pd.DataFrame:
        return pd.DataFrame({name: pd.Series(dtype="str") for name in self.header})


def _to_frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas()


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
