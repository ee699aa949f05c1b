"""Street names: one key to match them by, and the way people write them.

``street_key`` folds the spellings a crash report or a user may use into one form:
case, spacing and punctuation; ``STREET``/``ST``, ``AVENUE``/``AVE``/``AV``, ``BOULEVARD``/
``BLVD``, ``PLACE``/``PL``, ``ROAD``/``RD`` and a few more suffixes; ordinals (``42ND`` is
``42``); and a leading ``WEST``/``W`` before a numbered street (``WEST 42 STREET`` is
``W 42 ST``); an address's house number is dropped (``303 43 STREET`` is ``43 ST``, while
``59 STREET BRIDGE`` keeps its number). ``street_label`` writes a key as people do
(``W 42 St``), ``intersection`` names a pair of streets in one order whichever way round a
report has them, and
``search_parts`` splits a search (``broadway & w 42``, ``Broadway and W 42nd St``) into the
keys of its streets. Labels (``etl.hexes``) and search (``app.services.drilldown``) use these
same functions.
"""

from __future__ import annotations

import re
from typing import Final

# Suffixes after the first word: every spelling -> the short form people write.
SUFFIXES: Final = {
    "STREET": "ST",
    "STR": "ST",
    "ST": "ST",
    "AVENUE": "AVE",
    "AVEN": "AVE",
    "AVE": "AVE",
    "AV": "AVE",
    "BOULEVARD": "BLVD",
    "BOULV": "BLVD",
    "BLVD": "BLVD",
    "PLACE": "PL",
    "PL": "PL",
    "ROAD": "RD",
    "RD": "RD",
    "PARKWAY": "PKWY",
    "PKWY": "PKWY",
    "EXPRESSWAY": "EXPY",
    "EXPWY": "EXPY",
    "EXPY": "EXPY",
    "DRIVE": "DR",
    "DR": "DR",
    "LANE": "LN",
    "LN": "LN",
    "HIGHWAY": "HWY",
    "HWY": "HWY",
    "TERRACE": "TER",
    "TER": "TER",
    "COURT": "CT",
    "CT": "CT",
}
# The first word of a name: "AVENUE W", "AVE W" and "AV W" are one street, written out.
PREFIXES: Final = {"AVE": "AVENUE", "AV": "AVENUE", "SAINT": "ST"}
DIRECTIONS: Final = {
    "N": "NORTH",
    "S": "SOUTH",
    "E": "EAST",
    "W": "WEST",
    "NORTH": "NORTH",
    "SOUTH": "SOUTH",
    "EAST": "EAST",
    "WEST": "WEST",
}
SMALL_WORDS: Final = frozenset({"OF", "THE", "AND", "DE", "LA"})
# Words that join the two streets of an intersection in a search.
_JOINERS: Final = re.compile(r"\s*(?:&|/|@|\+|\bAND\b|\bAT\b|\bCORNER OF\b)\s*")
_ORDINAL: Final = re.compile(r"^(\d+)(?:ST|ND|RD|TH)$")
_DROPPED: Final = re.compile(r"[.,;:\"()]")
_HOUSE_NUMBER: Final = re.compile(r"^\d+[A-Z]?(?:-\d+)?$")
SEPARATOR: Final = " & "


def _tokens(text: str) -> list[str]:
    return _DROPPED.sub(" ", text.upper()).split()


def street_key(name: object) -> str:
    """The matching form of one street name (upper case, canonical words); ``""`` for a
    missing or blank name."""
    if not isinstance(name, str):
        return ""
    tokens = [_ORDINAL.sub(r"\1", token) for token in _tokens(name)]
    if len(tokens) > 2 and _HOUSE_NUMBER.match(tokens[0]) and tokens[1] not in SUFFIXES:
        tokens = tokens[1:]  # an address: "303 43 STREET" is 43 Street
    if not tokens:
        return ""
    first = tokens[0]
    if first in DIRECTIONS and len(tokens) > 1:
        numbered = tokens[1].isdigit()
        tokens[0] = DIRECTIONS[first][0] if numbered else DIRECTIONS[first]
    else:
        tokens[0] = PREFIXES.get(first, first)
    tokens[1:] = [SUFFIXES.get(token, token) for token in tokens[1:]]
    return " ".join(tokens)


def _word(word: str, position: int) -> str:
    if position and word in SMALL_WORDS:
        return word.lower()
    if word.startswith("O'") and len(word) > 2:
        return "O'" + word[2:].capitalize()
    return "-".join(part.capitalize() for part in word.split("-"))


def key_label(key: str) -> str:
    """A street key as people write it: ``W 42 ST`` -> ``W 42 St``."""
    return " ".join(_word(word, i) for i, word in enumerate(key.split()))


def street_label(name: object) -> str:
    """One street as people write it: ``WEST 42 STREET`` -> ``W 42 St``; ``""`` if blank."""
    return key_label(street_key(name))


def _numbered(key: str) -> bool:
    return any(token.isdigit() for token in key.split())


def pair_keys(a: str, b: str) -> tuple[str, str]:
    """Two street keys in the order an intersection is named: a named street before a
    numbered one (``BROADWAY & W 42 ST``), otherwise alphabetical; the same whichever way
    round they come."""
    return (a, b) if (_numbered(a), a) <= (_numbered(b), b) else (b, a)


def intersection(a: object, b: object) -> str:
    """The name of the corner of two streets: ``Broadway & W 42 St``; one street alone when
    the other is blank or the same; ``""`` when both are blank."""
    first, second = pair_keys(street_key(a), street_key(b))
    if not first or first == second:
        return key_label(second)
    return f"{key_label(first)}{SEPARATOR}{key_label(second)}"


def search_parts(text: str) -> list[str]:
    """The street keys of a search: one for a street, two for an intersection
    (``&``, ``and``, ``at``, ``/`` join them); blank parts dropped."""
    parts = _JOINERS.split(_DROPPED.sub(" ", text.upper()))
    return [key for key in (street_key(part) for part in parts) if key]


# Every spelling of a word that names the same thing, for matching: AVENUE, AVE and AV.
_SAME_WORD: Final = {**SUFFIXES, "SAINT": "ST"}
_SPELLINGS: Final = {
    short: frozenset({short, *(word for word, same in _SAME_WORD.items() if same == short)})
    for short in set(_SAME_WORD.values())
}


def _same(word: str) -> str:
    return _SAME_WORD.get(word, word)


def key_matches(query: str, key: str) -> bool:
    """Whether the street key ``key`` holds the words of ``query`` in order, contiguously,
    spelled any usual way (``AVENUE``/``AVE``); the last query word may be the start of a word
    (``BROAD`` finds ``BROADWAY``, ``EXPRESS`` finds ``EXPY``) unless it is a number (``42``
    does not find ``420``)."""
    words = [_same(word) for word in query.split()]
    target = [_same(word) for word in key.split()]
    if not words:
        return False
    *whole, last = words
    for start in range(len(target) - len(words) + 1):
        window = target[start : start + len(words)]
        if window[:-1] != whole:
            continue
        end = window[-1]
        spellings = _SPELLINGS.get(end, frozenset({end}))
        if end == last or (not last.isdigit() and any(w.startswith(last) for w in spellings)):
            return True
    return False


def label_matches(query: str, label: str) -> bool:
    """Whether a place label (``Broadway & W 42 St``, or one street) answers a search: each
    street of the search matches a different street of the label."""
    wanted = search_parts(query)
    streets = [street_key(part) for part in label.split(SEPARATOR)]
    if not wanted or len(wanted) > len(streets):
        return False
    if len(wanted) == 1:
        return any(key_matches(wanted[0], street) for street in streets)
    a, b = wanted[:2]
    first, second = streets[:2]
    return (key_matches(a, first) and key_matches(b, second)) or (
        key_matches(a, second) and key_matches(b, first)
    )
