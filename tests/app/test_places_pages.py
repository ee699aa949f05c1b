"""Places on the pages: hexes named by their streets and precinct in the ranked table, the
drill-down title and the exports; the precinct filter; search by corner."""

from __future__ import annotations

import dataclasses
import io
import json
from typing import TYPE_CHECKING

import h3
import pandas as pd
from test_pages import DRILLDOWN, open_app, texts

from core import schema as s
from core.streets import intersection

if TYPE_CHECKING:
    from conftest import City


def corner(city: City, cell: str) -> str:
    """The most frequent corner of a hex's crashes in the test city (its expected label)."""
    crashes = city.crashes[city.crashes[s.H3_CELL].map(lambda c: h3.cell_to_parent(c, 8)) == cell]
    names = [
        intersection(a, b)
        for a, b in zip(crashes[s.ON_STREET], crashes[s.CROSS_STREET], strict=True)
    ]
    counts = pd.Series(names).value_counts()
    return str(counts[counts == counts.max()].sort_index().index[0])


def test_the_ranked_table_names_places_first_and_keeps_the_hex_id_last(city: City) -> None:
    at = open_app()
    ranked = at.dataframe[0].value
    assert list(ranked.columns[:3]) == ["Place", "Precinct", "Borough"]
    assert ranked.columns[-1] == "Hex"
    assert ranked["Place"].str.contains(" & ").all()
    top = ranked["Hex"].iloc[0].split("hex=")[1].split("&")[0]
    assert ranked["Place"].iloc[0] == corner(city, top)
    assert set(ranked["Precinct"]) <= {"Precinct 2", "Precinct 10"}


def test_the_precinct_filter_keeps_one_precinct_and_lands_in_the_url(city: City) -> None:
    at = open_app()
    layer = at.selectbox(key="map_layer")
    assert layer.options == ["Borough", "Precinct"]
    layer.set_value(s.PRECINCT).run()
    area = at.selectbox(key=f"map_area_{s.PRECINCT}")
    assert area.options[1:] == ["Precinct 2", "Precinct 10"]  # numbers in number order
    area.set_value("Precinct 10").run()
    assert not at.exception
    ranked = at.dataframe[0].value
    assert len(ranked) > 0 and set(ranked["Precinct"]) == {"Precinct 10"}
    assert at.query_params["layer"] == s.PRECINCT
    assert at.query_params["area"] == "Precinct 10"
    assert "in Precinct 10" in texts(at)


def test_without_a_precinct_layer_the_table_has_no_precinct_column(
    city_builder, tmp_path, use_var_dir
) -> None:
    import sqlalchemy as sa

    from core.warehouse import areas_table, get_engine

    built = city_builder(tmp_path)
    engine = get_engine(f"sqlite:///{built.var_dir / 'warehouse.sqlite'}")
    with engine.begin() as conn:
        conn.execute(sa.delete(areas_table))
    use_var_dir(built.var_dir)
    at = open_app()
    ranked = at.dataframe[0].value
    assert "Precinct" not in ranked.columns and ranked.columns[0] == "Place"
    assert at.selectbox(key="map_layer").options == ["Borough"]


def test_exports_carry_the_place_and_precinct_and_stay_spreadsheet_safe(city: City) -> None:
    from app.services.risk_map import forecast_day

    day = forecast_day()
    table = pd.read_csv(io.BytesIO(day.csv()))
    assert list(table.columns[:3]) == ["Place", "Precinct", "Borough"]
    assert len(table) == day.summary.n_hexes
    assert table["Place"].str.contains(" & ").all()
    features = json.loads(day.geojson())["features"]
    assert len(features) == day.summary.n_hexes
    first = features[0]["properties"]
    assert first["Place"] == table["Place"].iloc[0] and first["Precinct"].startswith("Precinct ")
    assert features[0]["geometry"]["type"] == "Polygon"
    assert day.file_stem == f"risk-map-{day.target_date.isoformat()}-city"

    hostile = day.hexes.assign(place="=cmd|' /C calc'!A0")
    poisoned = dataclasses.replace(day, hexes=hostile, area="Precinct 10")
    assert b"\"'=cmd|' /C calc'!A0\"" in poisoned.csv()
    assert json.loads(poisoned.geojson())["features"][0]["properties"]["Place"].startswith("'=")
    assert poisoned.file_stem.endswith("-precinct-10")


def test_the_map_downloads_carry_the_files_of_the_view_ready(city: City) -> None:
    from app.services.risk_map import export_files

    at = open_app()
    at.selectbox(key="map_layer").set_value(s.PRECINCT).run()
    at.selectbox(key=f"map_area_{s.PRECINCT}").set_value("Precinct 10").run()
    buttons = [element.proto for element in at.get("download_button")]
    assert [b.label for b in buttons] == ["Download CSV", "Download GeoJSON"]
    # ready bytes, not a file built on click that another session's clean-up may delete
    assert all(b.url and not b.deferred_file_id for b in buttons)
    files = export_files(None, s.PRECINCT, "Precinct 10")
    assert files.stem.endswith("-precinct-10")
    table = pd.read_csv(io.BytesIO(files.csv))
    assert len(table) > 0 and set(table["Precinct"]) == {"Precinct 10"}
    assert len(json.loads(files.geojson)["features"]) == len(table)


def test_the_drilldown_title_names_the_corner_precinct_and_borough(city: City) -> None:
    at = open_app(DRILLDOWN, hex=city.riskiest)
    borough = city.hexes.set_index(s.H3_CELL).loc[city.riskiest, s.BOROUGH].title()
    title = at.header[0].value
    assert title.startswith(f"{corner(city, city.riskiest)} — Precinct ")
    assert title.endswith(f", {borough}")
    assert city.riskiest in texts(at)  # the id stays, in the caption
    neighbours = at.dataframe[-1].value
    assert neighbours.columns[0] == "Place" and neighbours.columns[-1] == "Hex"


def picked_hexes(at) -> set[str]:
    """The hex ids a street search offers (each option reads "place · n crashes · id")."""
    return {option.rsplit(" · ", 1)[1] for option in at.selectbox(key="drill_street_pick").options}


def test_the_drilldown_finds_a_corner_however_it_is_written(city: City) -> None:
    at = open_app(DRILLDOWN)
    at.text_input(key="drill_street").input("maple ave & elm").run()
    at_corner = city.crashes[
        (city.crashes[s.ON_STREET] == "MAPLE AVENUE")
        & (city.crashes[s.CROSS_STREET] == "ELM STREET")
    ]
    parents = {h3.cell_to_parent(c, 8) for c in at_corner[s.H3_CELL]}
    assert parents and picked_hexes(at) == parents
    for spelling in ("Maple Avenue and Elm Street", "ELM ST AT MAPLE AV"):
        at.text_input(key="drill_street").input(spelling).run()
        assert picked_hexes(at) == parents
    at.text_input(key="drill_street").input("maple ave & oak st").run()
    assert not at.selectbox  # no such corner: no picker
    assert "No hex on a street or corner with that name" in texts(at)
