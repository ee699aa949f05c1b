"""Reading area layers: a file or URL of named polygons to a checked frame, with geopandas.

Any format geopandas (GDAL, through pyogrio) reads: GeoJSON, a zipped shapefile as NYC City
Planning publishes them, a GeoPackage, FlatGeobuf, …; reprojected to WGS84. Files are read
from disk, URLs through the shared retrying session of ``etl/http.py``; validation is
``geo/areas.py``'s (GeoJSON is first checked feature by feature, so a broken document is
named in words rather than in GDAL's). Every failure is an :class:`AreaLayerError` (or a
``SourceError`` for the network) whose one-line message starts with the file name or URL.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import pandas as pd
import pyogrio.errors

from core import schema as s
from core.settings import Settings
from etl.http import get_response, make_session, raise_for_status
from geo.areas import (
    AreaLayerError,
    Box,
    frame_to_areas,
    geojson_to_areas,
    outside_city_problem,
)

SOURCE = "area layer"
CITY = Box(s.CITY_LNG_MIN, s.CITY_LAT_MIN, s.CITY_LNG_MAX, s.CITY_LAT_MAX)
PLAIN_NAMES: Final = "{}"  # the --label that names areas as the file does
FORMATS: Final = "GeoJSON, a zipped shapefile, a GeoPackage, …"


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def read_bytes(location: str, settings: Settings) -> bytes:
    """The raw bytes of an area layer's file path or http(s) URL."""
    if is_url(location):
        return _fetch(location, settings)
    path = Path(location)
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise AreaLayerError(f"{location}: no such file") from exc
    except IsADirectoryError as exc:
        raise AreaLayerError(
            f"{location}: is a directory, not a layer file (zip a shapefile's folder)"
        ) from exc
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
            raise AreaLayerError(f"{url}: the server returned an HTML page, not an area layer")
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


def looks_like_json(data: bytes) -> bool:
    """Whether bytes are (meant as) JSON text: blank, or opening with ``{`` or ``[``."""
    start = data.removeprefix(b"\xef\xbb\xbf").lstrip()[:1]
    return start in (b"", b"{", b"[")


def read_layer_file(data: bytes, label: str) -> gpd.GeoDataFrame:
    """Any layer file geopandas reads, from its bytes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # GDAL's notes on field types, not problems
            return gpd.read_file(io.BytesIO(data))
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise AreaLayerError(
            f"{label}: not a layer of polygons geopandas can read ({FORMATS})"
        ) from exc
    except (pyogrio.errors.GeometryError, pyogrio.errors.FieldError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise AreaLayerError(f"{label}: the layer cannot be read ({detail})") from exc


def name_areas(names: pd.Series, label: str) -> pd.Series:
    """Area names put into ``label`` (``"Precinct {}"``: precinct 14 is "Precinct 14")."""
    if label.count("{}") != 1 or label.count("{") != 1 or label.count("}") != 1:
        raise AreaLayerError(
            f"--label {label!r}: write {{}} once where the name goes, e.g. 'Precinct {{}}'"
        )
    return names.map(lambda name: label.replace("{}", name).strip()).astype("str")


def read_area_layer(
    location: str,
    settings: Settings,
    name_property: str,
    city: Box = CITY,
    label: str = PLAIN_NAMES,
) -> pd.DataFrame:
    """Named WGS84 polygons (``area``, ``geometry``) from a layer file or URL, checked.

    Refused, with the file or URL and the cause in the message: unreadable, not a format
    geopandas reads, not JSON or not a FeatureCollection or Feature (GeoJSON), a feature
    without the name property or without a polygon, and a layer whose polygons all lie
    outside ``city`` (naming swapped lat/lng if it looks so). ``label`` writes the names
    (``"Precinct {}"``).
    """
    name_areas(pd.Series([], dtype="str"), label)  # a bad label fails before any reading
    data = read_bytes(location, settings)
    try:
        if looks_like_json(data):
            geojson_to_areas(decode_document(data, location), name_property)
        areas = frame_to_areas(read_layer_file(data, location), name_property)
    except AreaLayerError as exc:
        message = str(exc)
        raise AreaLayerError(
            message if message.startswith(f"{location}: ") else f"{location}: {message}"
        ) from exc
    problem = outside_city_problem(areas, city)
    if problem:
        raise AreaLayerError(f"{location}: {problem}")
    return areas.assign(area=name_areas(areas["area"], label))
