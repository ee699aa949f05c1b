"""The shared CSV reader: one bad line never costs the file.

Every hostile case is a small file written to ``tmp_path``; each is read whole and in tiny
blocks (so block boundaries fall everywhere), and both readings must agree. Warehouse loads of
the same cases are in ``test_hostile_csv.py``.
"""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import schema as s
from etl.csv_files import CsvBlock, CsvFileError, CsvReader, read_csv_file

HEADER = ["id", "name", "place", "n"]
GOOD = ["1,Alpha,x,1", "2,Beta,y,2", "3,Gamma,z,3"]
BLOCK_SIZES = [1, 7, 64, 1 << 20]


def write(tmp_path: Path, data: bytes, name: str = "file.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def lines(*rows: str, header: str = ",".join(HEADER), end: str = "\n") -> bytes:
    return "".join(f"{row}{end}" for row in (header, *rows)).encode()


def read_all_ways(path: Path, **options: str) -> CsvBlock:
    """The file read whole, after checking every small block size reads it the same."""
    whole = read_csv_file(path, **options)
    for size in BLOCK_SIZES:
        small = read_csv_file(path, block_bytes=size, **options)
        pd.testing.assert_frame_equal(small.frame, whole.frame)
        pd.testing.assert_frame_equal(small.rejects, whole.rejects)
    return whole


def rows(block: CsvBlock) -> list[list[str]]:
    return block.frame.to_numpy().tolist()


def rejected(block: CsvBlock) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in block.rejects[[s.RECORD_KEY, s.REASON, s.RAW]].to_numpy().tolist()]


def good_rows() -> list[list[str]]:
    return [row.split(",") for row in GOOD]


# ------------------------------------------------------------------------------------------
# malformed lines


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("4,Delta", "malformed row: 2 fields, expected 4"),
        ("4", "malformed row: 1 field, expected 4"),
        ("4,Delta,w,4,extra,more", "malformed row: 6 fields, expected 4"),
        ('4,"Delta,w,4', "malformed row: unbalanced quote"),
        ("4,Del\rta,w,4", "malformed row: stray carriage return"),
        ("   ", "malformed row: 1 field, expected 4"),
    ],
)
def test_a_malformed_line_among_good_ones_is_rejected_with_its_line_number(
    tmp_path: Path, bad: str, reason: str
) -> None:
    path = write(tmp_path, lines(GOOD[0], bad, *GOOD[1:]))

    block = read_all_ways(path)

    assert rows(block) == good_rows()
    assert rejected(block) == [("line 3", reason, bad)]
    assert block.rows_in == 4


def test_an_unbalanced_quote_does_not_swallow_the_quoted_lines_after_it(tmp_path: Path) -> None:
    """NYC exports quote a field on every line ("(40.7, -73.9)"): an open quote must not pair
    with the next line's quotes and shift every field after it."""
    quoted = [f'{i},"Name {i}","(40.{i}, -73.9)",{i}' for i in range(1, 6)]
    path = write(tmp_path, lines(quoted[0], '9,Broken,"(40.9, -73.9,9', *quoted[1:]))

    block = read_all_ways(path)

    assert block.frame["id"].tolist() == ["1", "2", "3", "4", "5"]
    assert block.frame["place"].tolist() == [f"(40.{i}, -73.9)" for i in range(1, 6)]
    assert [key for key, _, _ in rejected(block)] == ["line 3"]


def test_an_unbalanced_quote_on_the_last_line_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, lines(*GOOD, '4,"Delta,w,4'))

    block = read_all_ways(path)

    assert rows(block) == good_rows()
    assert rejected(block) == [("line 5", "malformed row: unbalanced quote", '4,"Delta,w,4')]


def test_quoted_values_may_span_lines(tmp_path: Path) -> None:
    path = write(tmp_path, lines(GOOD[0], '2,"Beta\nsecond line",y,2', GOOD[2], "4,Delta"))

    block = read_all_ways(path)

    first, third = GOOD[0].split(","), GOOD[2].split(",")
    assert rows(block) == [first, ["2", "Beta\nsecond line", "y", "2"], third]
    assert rejected(block) == [("line 6", "malformed row: 2 fields, expected 4", "4,Delta")]


def test_text_after_a_closing_quote_joins_the_field_as_arrow_and_python_read_it(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, lines('1,"Al"pha,x,1', '2,Be"ta,y,2', GOOD[2]))

    block = read_all_ways(path)

    assert block.frame["name"].tolist() == ["Alpha", 'Be"ta', "Gamma"]
    assert block.rejects.empty


def test_blank_lines_are_no_rows(tmp_path: Path) -> None:
    path = write(tmp_path, lines(GOOD[0], "", GOOD[1], "\r", GOOD[2], ""))

    block = read_all_ways(path)

    assert rows(block) == good_rows()
    assert block.rejects.empty


def test_crlf_line_ends(tmp_path: Path) -> None:
    path = write(tmp_path, lines(GOOD[0], "4,Delta", *GOOD[1:], end="\r\n"))

    block = read_all_ways(path)

    assert rows(block) == good_rows()
    assert rejected(block) == [("line 3", "malformed row: 2 fields, expected 4", "4,Delta")]


def test_a_last_line_without_newline(tmp_path: Path) -> None:
    path = write(tmp_path, lines(*GOOD)[:-1])

    assert rows(read_all_ways(path)) == good_rows()


# ------------------------------------------------------------------------------------------
# encodings


def test_a_latin1_byte_among_utf8_rejects_that_line_only(tmp_path: Path) -> None:
    data = lines("1,Zoë,x,1", "2,Beta,y,2").replace(b"Beta", b"B\xe9ta") + "3,Ünter,z,3\n".encode()
    path = write(tmp_path, data)

    block = read_all_ways(path)

    assert rows(block) == [["1", "Zoë", "x", "1"], ["3", "Ünter", "z", "3"]]
    assert rejected(block) == [("line 3", "not valid UTF-8", "2,B\\xe9ta,y,2")]


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [
        ("utf-8", codecs.BOM_UTF8),
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
        ("utf-32-le", codecs.BOM_UTF32_LE),
    ],
)
def test_a_byte_order_mark_decides_the_encoding(tmp_path: Path, encoding: str, bom: bytes) -> None:
    text = lines("1,Zoë,x,1", "2,Beta", "3,日本,z,3", end="\r\n").decode()
    path = write(tmp_path, bom + text.encode(encoding))

    block = read_all_ways(path)

    assert list(block.frame.columns) == HEADER  # no BOM glued to the first name
    assert rows(block) == [["1", "Zoë", "x", "1"], ["3", "日本", "z", "3"]]
    assert rejected(block) == [("line 3", "malformed row: 2 fields, expected 4", "2,Beta")]


def test_undecodable_utf16_is_rejected_by_line(tmp_path: Path) -> None:
    text = lines("1,Zoë,x,1", "2,Beta,y,2", "3,Gamma,z,3").decode()
    data = codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    at = data.index("Beta".encode("utf-16-le"))
    data = data[:at] + b"\x00\xdc" + data[at + 2 :]  # a lone low surrogate instead of "B"

    block = read_all_ways(write(tmp_path, data))

    assert block.frame["id"].tolist() == ["1", "3"]
    assert [(key, reason) for key, reason, _ in rejected(block)] == [("line 3", "not valid UTF-16")]


def test_a_cp1252_file_loads_its_ascii_lines_or_all_of_it_when_asked(tmp_path: Path) -> None:
    text = lines("1,Café,x,1", "2,Beta,y,2", "3,€uro,z,3").decode()
    path = write(tmp_path, text.encode("cp1252"))

    default = read_all_ways(path)
    asked = read_all_ways(path, encoding="cp1252")

    assert default.frame["id"].tolist() == ["2"]
    assert [(k, r) for k, r, _ in rejected(default)] == [
        ("line 2", "not valid UTF-8"),
        ("line 4", "not valid UTF-8"),
    ]
    assert asked.frame["name"].tolist() == ["Café", "Beta", "€uro"]
    assert asked.rejects.empty


def test_an_unknown_encoding_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(CsvFileError, match="unknown encoding 'klingon'"):
        read_csv_file(write(tmp_path, lines(*GOOD)), encoding="klingon")


# ------------------------------------------------------------------------------------------
# whole-file errors name the file and the cause


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (codecs.BOM_UTF8, "the file is empty"),
        (b"\n\n  \r\n", "the file is empty"),
        (b"\n" + lines(*GOOD), "the first line is blank, not a header"),
        (b"id,name,id\n1,2,3\n", r"the header repeats a column name \(id\)"),
        (b'id,"name\n', "cannot read the header line"),
        (b"id,name\r1,2\r", "bare carriage return"),
        (b"id,n\xe9me\n1,2\n", "the header line is not valid UTF-8"),
    ],
)
def test_a_file_that_is_no_csv_is_refused_naming_it(
    tmp_path: Path, data: bytes, message: str
) -> None:
    path = write(tmp_path, data)

    with pytest.raises(CsvFileError, match=message) as caught:
        read_csv_file(path)

    assert str(caught.value).startswith(f"{path}: ")
    assert "\n" not in str(caught.value)


def test_a_missing_file_or_a_folder_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(CsvFileError, match=f"^{tmp_path / 'nope.csv'}: no such file$"):
        read_csv_file(tmp_path / "nope.csv")
    with pytest.raises(CsvFileError, match="is a folder"):
        read_csv_file(tmp_path)


def test_missing_required_columns_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, lines(*GOOD))

    with pytest.raises(CsvFileError, match="missing columns DATE, Vol") as caught:
        read_csv_file(path, required=("id", "DATE", "NAME", "Vol"))

    assert "the header has id, name, place, n" in str(caught.value)


def test_a_header_only_file_has_no_rows(tmp_path: Path) -> None:
    block = read_all_ways(write(tmp_path, lines()))

    assert list(block.frame.columns) == HEADER
    assert block.rows_in == 0


def test_the_reader_closes_the_file(tmp_path: Path) -> None:
    reader = CsvReader(write(tmp_path, lines(*GOOD)))
    list(reader)
    assert reader._handle.closed


# ------------------------------------------------------------------------------------------
# any mix of good records and broken lines

cell = st.lists(
    st.sampled_from(["a", "b", " ", ",", '"', "\n", "\r\n", "é", "日", "\t", "x y"]), max_size=5
).map("".join)
good_record = st.tuples(cell, cell, cell, cell)
broken = st.sampled_from(
    [
        "1,2",
        "1,2,3,4,5",
        '"open,1,2,3',
        'a,"b,c,d',
        'a,b,"c"d",e,f',
        "a,b\r,c,d",
        "latin-1 \xe9,b,c,d",
    ]
)


def to_line(record: tuple[str, ...]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(record)
    return out.getvalue()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    items=st.lists(st.one_of(good_record, broken), max_size=25),
    block_bytes=st.sampled_from([1, 5, 40, 1 << 20]),
)
def test_every_good_record_loads_and_every_broken_line_is_rejected_with_its_number(
    tmp_path: Path, items: list[tuple[str, ...] | str], block_bytes: int
) -> None:
    data = "id,nämé,place,n\n".encode()
    expected_rows: list[list[str]] = []
    expected_lines: list[str] = []
    line = 2
    for item in items:
        if isinstance(item, str):
            expected_lines.append(f"line {line}")
            data += item.encode("latin-1" if "\xe9" in item else "utf-8") + b"\n"
            line += 1
        else:
            text = to_line(item)
            expected_rows.append(list(item))
            data += text.encode()
            line += text.count("\n")
    path = tmp_path / f"fuzz_{block_bytes}.csv"
    path.write_bytes(data)

    block = read_csv_file(path, block_bytes=block_bytes)

    assert rows(block) == expected_rows
    assert block.rejects[s.RECORD_KEY].tolist() == expected_lines
    assert (block.rejects[s.REASON] != "").all()
