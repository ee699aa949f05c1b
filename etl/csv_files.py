"""Streaming reads of CSV files as all-text frames (parsing is the adapters' job)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from etl.crashes import RawCrashBatch, detect_csv_shape

DEFAULT_BLOCK_BYTES = 64 << 20


class CsvFileError(ValueError):
    """A file that cannot be read as CSV."""


def read_header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return next(csv.reader(handle))
    except FileNotFoundError as exc:
        raise CsvFileError(f"{path}: no such file") from exc
    except (StopIteration, UnicodeDecodeError, csv.Error) as exc:
        raise CsvFileError(f"{path}: not a readable CSV file ({exc})") from exc


def read_csv_batches(path: Path, block_bytes: int = DEFAULT_BLOCK_BYTES) -> Iterator[pd.DataFrame]:
    """Every row of ``path`` as text, in batches of about ``block_bytes`` of input."""
    header = read_header(path)
    if len(set(header)) != len(header):
        raise CsvFileError(f"{path}: the header repeats a column name")
    try:  # open_csv parses the first block already
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=block_bytes, encoding="utf-8-sig"),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        for batch in reader:
            yield batch.to_pandas()
    except pa.ArrowInvalid as exc:
        raise CsvFileError(f"{path}: malformed CSV ({str(exc).splitlines()[0]})") from exc


def crash_csv_batches(
    path: Path, block_bytes: int = DEFAULT_BLOCK_BYTES
) -> Iterator[RawCrashBatch]:
    shape = detect_csv_shape(read_header(path))
    for frame in read_csv_batches(path, block_bytes):
        yield RawCrashBatch(frame=frame, shape=shape)
