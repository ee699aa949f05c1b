"""Reading area layers: a GeoJSON file or URL to a checked frame of named polygons.

Files are read from disk, URLs through the shared retrying session of ``etl/http.py``; parsing
and validation are ``geo/areas.py``'s. Every failure is an :class:`AreaLayerError` (or a
``SourceError`` for the network) whose one-line message starts with the file name or URL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from core import schema as s
from core.settings import Settings
from etl.http import get_response, make_session, raise_for_status
from geo.areas import AreaLayerError, Box, geojson_to_areas, outside_city_problem

SOURCE = "area layer"
CITY = Box(s.CITY_LNG_MIN, s.CITY_LAT_MIN, s.CITY_LNG_MAX, s.CITY_LAT_MAX)


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def read_bytes(location: str, settings: Settings) -> bytes:
    """The raw bytes of a GeoJSON file path or http(s) URL."""
    if is_url(location):
        return _fetch(location, settings)
    path = Path(location)
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise AreaLayerError(f"{location}: no such file") from exc
    except IsADirectoryError as exc:
        raise AreaLayerError(f"{location}: is a directory, not a GeoJSON file") from exc
    except PermissionError as exc:
        raise AreaLayerError(f"{location}: cannot read it (permission denied)") from exc
    except OSError as exc:
        raise AreaLayerError(f"{location}: cannot read it ({exc.strerror or exc})") from exc


def _fetch(url: str, settings: Settings) -> bytes:
    with make_session(settings) as session:
        response = get_response(session, url, source=SOURCE)
        raise_for_status(response, source=SOURCE, retries=settings.http_retries)
        content_type = response.headers.get("Content-Type", "").lower()
        if "text/html" in content_type or response.content.lstrip()[:1] == b"<":
            raise AreaLayerError(f"{url}: the server returned an HTML page, not GeoJSON")
        return response.content


def decode_document(data: bytes, label: str) -> Any:
    """Bytes of JSON text (UTF-8, with or without a byte-order mark) to a document."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AreaLayerError(
            f"{label}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from exc
    if not text.strip():
        raise AreaLayerError(f"{label}: empty, not GeoJSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AreaLayerError(
            f"{label}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        ) from exc
    except RecursionError as exc:
        raise AreaLayerError(f"{label}: not valid JSON (nested too deeply)") from exc


def read_area_layer(
    location: str, settings: Settings, name_property: str, city: Box = CITY
) -> pd.DataFrame:
    """Named polygons (``area``, ``geometry``) from a GeoJSON file or URL, checked.

    Refused, with the file or URL and the cause in the message: unreadable, not JSON, not a
    FeatureCollection or Feature, a feature without the name property or without a polygon,
    and a layer whose polygons all lie outside ``city`` (naming swapped lat/lng if it looks so).
    """
    document = decode_document(read_bytes(location, settings), location)
    try:
        areas = geojson_to_areas(document, name_property)
    except AreaLayerError as exc:
        raise AreaLayerError(f"{location}: {exc}") from exc
    problem = outside_city_problem(areas, city)
    if problem:
        raise AreaLayerError(f"{location}: {problem}")
    return areas
