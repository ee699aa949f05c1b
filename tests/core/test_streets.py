"""The street normaliser shared by place labels and search (``core.streets``)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from core.streets import (
    intersection,
    key_matches,
    label_matches,
    search_parts,
    street_key,
    street_label,
)

NAMES = ("BROADWAY", "MAPLE", "PARK", "UNION SQUARE", "GUN HILL", "ST MARKS", "O'BRIEN")
SUFFIX_SPELLINGS = {
    "St": ("STREET", "ST", "Street", "st."),
    "Ave": ("AVENUE", "AVE", "Av", "avenue"),
    "Blvd": ("BOULEVARD", "BLVD", "Blvd."),
    "Pl": ("PLACE", "PL"),
    "Rd": ("ROAD", "RD", "Rd."),
}
ORDINAL = {1: "ST", 2: "ND", 3: "RD", 4: "TH", 42: "ND", 11: "TH", 23: "RD"}

numbers = st.sampled_from(sorted(ORDINAL))
suffixes = st.sampled_from(sorted(SUFFIX_SPELLINGS))
directions = st.sampled_from([("W", "WEST"), ("E", "East"), ("N", "north"), ("S", "SOUTH")])
spacing = st.sampled_from([" ", "  ", "   "])


@st.composite
def numbered_street(draw: st.DrawFn) -> tuple[str, str]:
    """Two spellings of one numbered street (``W 42 ST`` / ``west 42nd   Street``)."""
    number, suffix = draw(numbers), draw(suffixes)
    short_dir, long_dir = draw(directions)
    plain = f"{short_dir} {number} {SUFFIX_SPELLINGS[suffix][0]}"
    gap = draw(spacing)
    fancy = gap.join(
        [
            long_dir,
            f"{number}{ORDINAL[number].lower()}",
            draw(st.sampled_from(SUFFIX_SPELLINGS[suffix])),
        ]
    )
    return plain, f"{draw(spacing)}{fancy}{draw(spacing)}"


@st.composite
def named_street(draw: st.DrawFn) -> tuple[str, str]:
    """Two spellings of one named street (``MAPLE AVENUE`` / ``maple av.``)."""
    name, suffix = draw(st.sampled_from(NAMES)), draw(suffixes)
    spellings = SUFFIX_SPELLINGS[suffix]
    first = f"{name} {draw(st.sampled_from(spellings))}"
    second = f"{name.lower()}{draw(spacing)}{draw(st.sampled_from(spellings))}"
    return first, second


streets = st.one_of(numbered_street(), named_street())


@given(streets)
def test_spellings_of_one_street_share_a_key_and_a_label(pair: tuple[str, str]) -> None:
    one, other = pair
    assert street_key(one) == street_key(other)
    assert street_label(one) == street_label(other)


@given(streets)
def test_the_key_is_its_own_key(pair: tuple[str, str]) -> None:
    key = street_key(pair[1])
    assert street_key(key) == key
    assert street_key(street_label(pair[1])) == key


@given(st.text(max_size=60))
def test_any_text_gives_a_tidy_key_without_raising(text: str) -> None:
    key = street_key(text)
    assert key == key.strip() and "  " not in key
    assert key == key.upper()
    assert street_label(text).upper() == key


@given(streets, streets)
def test_an_intersection_is_named_the_same_whichever_way_round(
    a: tuple[str, str], b: tuple[str, str]
) -> None:
    assert intersection(a[0], b[0]) == intersection(b[1], a[1])


@given(streets, streets)
def test_a_search_for_a_corner_finds_its_label(a: tuple[str, str], b: tuple[str, str]) -> None:
    assume(street_key(a[0]) != street_key(b[0]))  # a corner has two streets
    label = intersection(a[0], b[0])
    for joiner in (" & ", " and ", " AT ", "/"):
        assert label_matches(f"{b[1]}{joiner}{a[1]}", label)
    assert label_matches(a[1], label)


@given(numbers, numbers)
def test_a_number_matches_only_itself(n: int, m: int) -> None:
    assert key_matches(f"W {n}", f"W {m}0 ST") is False
    assert key_matches(f"W {n}", f"W {m} ST") is (n == m)


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("WEST 42 STREET", "W 42 St"),
        ("BROADWAY", "Broadway"),
        ("W. 42nd St", "W 42 St"),
        ("303 43 STREET", "43 St"),  # an address: the house number goes
        ("156 CHESTNUT ROAD", "Chestnut Rd"),
        ("59 STREET BRIDGE", "59 St Bridge"),  # a numbered name keeps its number
        ("1 AVENUE", "1 Ave"),
        ("AVENUE W", "Avenue W"),
        ("AVE W", "Avenue W"),
        ("WEST END AVENUE", "West End Ave"),
        ("EAST GUN HILL ROAD", "East Gun Hill Rd"),
        ("E GUN HILL RD", "East Gun Hill Rd"),
        ("AVENUE OF THE AMERICAS", "Avenue of the Americas"),
        ("ST. JOHN'S PLACE", "St John's Pl"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_streets_are_written_as_people_write_them(raw: str, label: str) -> None:
    assert street_label(raw) == label


def test_missing_names_are_blank() -> None:
    assert street_key(None) == "" and street_key(float("nan")) == ""
    assert intersection(None, "BROADWAY") == "Broadway"
    assert intersection("BROADWAY", "broadway") == "Broadway"
    assert intersection(None, "  ") == ""


def test_a_named_street_comes_before_a_numbered_one() -> None:
    assert intersection("WEST 42 STREET", "BROADWAY") == "Broadway & W 42 St"
    assert intersection("12 STREET", "MAPLE AVENUE") == "Maple Ave & 12 St"
    assert intersection("5 AVENUE", "EAST 59 STREET") == "5 Ave & E 59 St"


@pytest.mark.parametrize(
    "query",
    [
        "broadway & w 42",
        "W 42nd St",
        "Broadway and West 42nd Street",
        "w 42 st at broadway",
        "BROADWAY/W 42 ST",
        "broadw",
        "42 street",
    ],
)
def test_searches_people_type_find_broadway_and_w_42(query: str) -> None:
    assert label_matches(query, "Broadway & W 42 St")


@pytest.mark.parametrize("query", ["w 4", "broadway & w 43", "5 ave", "e 42 st", ""])
def test_searches_for_other_streets_do_not(query: str) -> None:
    assert not label_matches(query, "Broadway & W 42 St")


def test_search_parts_split_intersections() -> None:
    assert search_parts("broadway & w 42") == ["BROADWAY", "W 42"]
    assert search_parts("Broadway at W 42nd St") == ["BROADWAY", "W 42 ST"]
    assert search_parts("  &  ") == []


def test_suffixes_match_in_any_spelling_and_as_a_word_start() -> None:
    assert key_matches(street_key("expressway"), "HARBOR EXPY")
    assert key_matches(street_key("harbor express"), "HARBOR EXPY")
    assert key_matches(street_key("maple avenue"), "MAPLE AVE")
    assert not key_matches(street_key("maple avenue"), "MAPLE RD")
