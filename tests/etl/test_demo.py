"""The demo city source: determinism, record shapes, geography and the planted effects."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer

from etl.demo import DemoCity, DemoConfig, generate_demo_city, write_demo_files

LAT_MIN, LAT_MAX, LNG_MIN, LNG_MAX = 40.49, 40.92, -74.27, -73.68

CRASH_HEADER = [
    "CRASH DATE",
    "CRASH TIME",
    "BOROUGH",
    "ZIP CODE",
    "LATITUDE",
    "LONGITUDE",
    "LOCATION",
    "ON STREET NAME",
    "CROSS STREET NAME",
    "OFF STREET NAME",
    "NUMBER OF PERSONS INJURED",
    "NUMBER OF PERSONS KILLED",
    "NUMBER OF PEDESTRIANS INJURED",
    "NUMBER OF PEDESTRIANS KILLED",
    "NUMBER OF CYCLIST INJURED",
    "NUMBER OF CYCLIST KILLED",
    "NUMBER OF MOTORIST INJURED",
    "NUMBER OF MOTORIST KILLED",
    "CONTRIBUTING FACTOR VEHICLE 1",
    "CONTRIBUTING FACTOR VEHICLE 2",
    "CONTRIBUTING FACTOR VEHICLE 3",
    "CONTRIBUTING FACTOR VEHICLE 4",
    "CONTRIBUTING FACTOR VEHICLE 5",
    "COLLISION_ID",
    "VEHICLE TYPE CODE 1",
    "VEHICLE TYPE CODE 2",
    "VEHICLE TYPE CODE 3",
    "VEHICLE TYPE CODE 4",
    "VEHICLE TYPE CODE 5",
]
GHCN_HEADER = ["STATION", "NAME", "DATE", "AWND", "PRCP", "SNOW", "SNWD", "TMAX", "TMIN"]
DOT_HEADER = [
    "RequestID",
    "Boro",
    "Yr",
    "M",
    "D",
    "HH",
    "MM",
    "Vol",
    "SegmentID",
    "WktGeom",
    "street",
    "fromSt",
    "toSt",
    "Direction",
]
YEAR_2023 = DemoConfig(end=dt.date(2023, 12, 31))
MONTH = DemoConfig(end=dt.date(2023, 1, 31), n_count_segments=20)


@pytest.fixture(scope="module")
def city() -> DemoCity:
    """One year of the default city (about 110k crashes)."""
    return generate_demo_city(YEAR_2023)


@pytest.fixture(scope="module")
def daily(city: DemoCity) -> pd.DataFrame:
    """Emitted crashes per day next to the emitted weather and the planted expectation."""
    counts = city.crashes["CRASH DATE"].value_counts()
    counts.index = pd.to_datetime(counts.index, format="%m/%d/%Y")
    wx = city.weather_observed.assign(date=pd.to_datetime(city.weather_observed["DATE"]))
    out = city.truth.daily_expected.assign(
        n=lambda d: counts.reindex(d["date"]).fillna(0).to_numpy(),
        prcp_in=wx["PRCP"].astype(float).to_numpy(),
        snow_in=wx["SNOW"].astype(float).to_numpy(),
        weekday=lambda d: d["date"].dt.day_of_week,
        month=lambda d: d["date"].dt.month,
    )
    assert (wx["date"].to_numpy() == out["date"].to_numpy()).all()
    return out


def _points(crashes: pd.DataFrame) -> pd.DataFrame:
    has = (crashes["LATITUDE"] != "") & (crashes["LATITUDE"] != "0.0")
    return crashes.loc[has].assign(
        lat=lambda d: d["LATITUDE"].astype(float), lng=lambda d: d["LONGITUDE"].astype(float)
    )


# --- determinism ---------------------------------------------------------------------------
def test_same_seed_gives_identical_records() -> None:
    a, b = generate_demo_city(MONTH), generate_demo_city(MONTH)
    pd.testing.assert_frame_equal(a.crashes, b.crashes)
    pd.testing.assert_frame_equal(a.weather_observed, b.weather_observed)
    pd.testing.assert_frame_equal(a.traffic_counts, b.traffic_counts)
    pd.testing.assert_frame_equal(a.truth.cells, b.truth.cells)
    pd.testing.assert_frame_equal(a.truth.daily_expected, b.truth.daily_expected)
    assert a.weather_forecast == b.weather_forecast
    assert a.precincts == b.precincts


def test_different_seed_gives_different_records() -> None:
    a = generate_demo_city(MONTH)
    b = generate_demo_city(DemoConfig(seed=7, end=MONTH.end))
    assert set(a.truth.cells["h3_cell"]) != set(b.truth.cells["h3_cell"])
    assert not a.crashes["LATITUDE"].head(1000).equals(b.crashes["LATITUDE"].head(1000))
    assert not a.weather_observed["PRCP"].equals(b.weather_observed["PRCP"])
    assert a.weather_forecast != b.weather_forecast
    assert a.precincts != b.precincts


def test_precincts_cover_every_hex_once_and_are_numbered(city: DemoCity) -> None:
    import shapely
    import shapely.geometry

    features = city.precincts["features"]
    numbers = [f["properties"]["precinct"] for f in features]
    assert numbers == list(range(1, len(features) + 1))
    assert 20 <= len(features) <= 80
    shapes = [shapely.geometry.shape(f["geometry"]) for f in features]
    cells = city.truth.cells
    points = shapely.points(cells["lng"].to_numpy(), cells["lat"].to_numpy())
    holding = np.array([shapely.contains(shape, points) for shape in shapes])  # (precinct, hex)
    assert (holding.sum(axis=0) == 1).all()  # every hex centre in exactly one precinct
    assert holding.sum(axis=1).min() >= 5  # no precinct a sliver


def test_demo_crashes_name_avenues_and_numbered_streets(city: DemoCity) -> None:
    from core.streets import intersection

    on, cross = city.crashes["ON STREET NAME"], city.crashes["CROSS STREET NAME"]
    corners = {intersection(a, b) for a, b in zip(on.head(2000), cross.head(2000), strict=True)}
    grid = [c for c in corners if re.fullmatch(r"[A-Z][a-z]+ (Ave|Rd) & \d+ St", c)]
    assert len(grid) > 20, sorted(corners)[:10]


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="before start"):
        DemoConfig(start=dt.date(2024, 1, 2), end=dt.date(2024, 1, 1))
    with pytest.raises(ValueError, match="rates"):
        DemoConfig(missing_coord_rate=1.5)


# --- crash record shape ----------------------------------------------------------------------
def test_crash_header_is_the_open_data_export(city: DemoCity) -> None:
    assert list(city.crashes.columns) == CRASH_HEADER


def test_every_crash_value_is_a_string(city: DemoCity) -> None:
    for col in city.crashes.columns:
        s = city.crashes[col]
        assert pd.api.types.is_string_dtype(s), col
        assert not s.isna().any(), col
    assert isinstance(city.crashes.iloc[123, 10], str)


def test_crash_value_formats(city: DemoCity) -> None:
    c = city.crashes
    assert c["CRASH DATE"].str.fullmatch(r"(0[1-9]|1[0-2])/(0[1-9]|[12]\d|3[01])/20\d\d").all()
    assert c["CRASH TIME"].str.fullmatch(r"(1?\d|2[0-3]):[0-5]\d").all()
    assert (c["CRASH TIME"] == "0:05").any() and (c["CRASH TIME"] == "17:40").any()
    days = pd.to_datetime(c["CRASH DATE"], format="%m/%d/%Y")
    assert days.min() == pd.Timestamp(YEAR_2023.start)
    assert days.max() == pd.Timestamp(YEAR_2023.end)
    assert days.is_monotonic_increasing
    assert c["ZIP CODE"].str.fullmatch(r"(\d{5})?").all()
    p = _points(c)
    assert p["LATITUDE"].str.fullmatch(r"40\.\d{6}").all()
    assert p["LONGITUDE"].str.fullmatch(r"-7[34]\.\d{6}").all()
    loc = p["LOCATION"].str.extract(r"^\((-?[\d.]+), (-?[\d.]+)\)$").astype(float)
    assert np.allclose(loc[0], p["lat"]) and np.allclose(loc[1], p["lng"])


def test_collision_ids_are_unique_integers(city: DemoCity) -> None:
    ids = city.crashes["COLLISION_ID"]
    assert ids.str.fullmatch(r"\d+").all()
    assert ids.is_unique
    assert ids.astype(int).min() == YEAR_2023.first_collision_id


def test_planted_shares_of_blank_and_zero_coordinates(city: DemoCity) -> None:
    c = city.crashes
    blank = c["LATITUDE"] == ""
    zero = c["LATITUDE"] == "0.0"
    assert ((c["LONGITUDE"] == "") == blank).all() and ((c["LOCATION"] == "") == blank).all()
    assert (c.loc[zero, "LONGITUDE"] == "0.0").all()
    assert (c.loc[zero, "LOCATION"] == "(0.0, 0.0)").all()
    assert blank.mean() == pytest.approx(YEAR_2023.missing_coord_rate, abs=0.002)
    assert zero.mean() == pytest.approx(YEAR_2023.zero_coord_rate, abs=0.0008)
    no_boro = c["BOROUGH"] == ""
    assert no_boro.mean() == pytest.approx(0.30, abs=0.01)
    assert (c.loc[no_boro, "ZIP CODE"] == "").all()
    assert set(c.loc[~no_boro, "BOROUGH"]) == {
        "NORTH SIDE",
        "HARBOR",
        "WESTVIEW",
        "EASTGATE",
        "SOUTH SHORE",
    }


def test_severity_counts_add_up(city: DemoCity) -> None:
    n = city.crashes.filter(like="NUMBER OF").astype(int)
    injured = n["NUMBER OF PERSONS INJURED"]
    parts = n[[f"NUMBER OF {k} INJURED" for k in ("PEDESTRIANS", "CYCLIST", "MOTORIST")]]
    killed = n[[f"NUMBER OF {k} KILLED" for k in ("PEDESTRIANS", "CYCLIST", "MOTORIST")]]
    assert (parts.sum(axis=1) == injured).all()
    assert (killed.sum(axis=1) == n["NUMBER OF PERSONS KILLED"]).all()
    assert (injured > 0).mean() == pytest.approx(0.30, abs=0.01)
    assert 0.0003 < (n["NUMBER OF PERSONS KILLED"] > 0).mean() < 0.002


def test_vehicles_and_factors_are_nyc_labels(city: DemoCity) -> None:
    c = city.crashes
    veh = c[[f"VEHICLE TYPE CODE {k}" for k in range(1, 6)]]
    fac = c[[f"CONTRIBUTING FACTOR VEHICLE {k}" for k in range(1, 6)]]
    assert (veh["VEHICLE TYPE CODE 1"] != "").all()
    assert ((veh == "").to_numpy() == (fac == "").to_numpy()).all()
    present = (veh != "").to_numpy()
    assert (present[:, :-1] >= present[:, 1:]).all()  # no gaps between vehicles
    top = c["VEHICLE TYPE CODE 1"].value_counts().index[:2].tolist()
    assert set(top) == {"Sedan", "Station Wagon/Sport Utility Vehicle"}
    factors = set(fac.to_numpy().ravel()) - {""}
    assert {"Driver Inattention/Distraction", "Unspecified", "Failure to Yield Right-of-Way"} <= (
        factors
    )
    cyclist = c["NUMBER OF CYCLIST INJURED"].astype(int) > 0
    assert c.loc[cyclist, "VEHICLE TYPE CODE 2"].isin(["Bike", "E-Bike"]).all()


def test_streets_follow_the_planted_corridors(city: DemoCity) -> None:
    c = city.crashes
    cells = city.truth.cells.set_index("h3_cell")
    planted = city.truth.crash_cells.set_index("COLLISION_ID")["h3_cell"]
    corridor_of = cells["corridor"].reindex(planted.reindex(c["COLLISION_ID"]).to_numpy())
    on = c["ON STREET NAME"].to_numpy()
    named = np.isin(on, cells.loc[cells["is_corridor"], "corridor"].unique())
    assert named.mean() > 0.1
    assert (corridor_of.to_numpy()[named] == on[named]).all()
    address = c["OFF STREET NAME"] != ""
    assert address.mean() == pytest.approx(0.15, abs=0.01)
    assert (c.loc[address, "ON STREET NAME"] == "").all()
    assert (c.loc[~address, "ON STREET NAME"] != "").all()


# --- geography -------------------------------------------------------------------------------
def test_city_is_a_blob_of_res8_hexes_inside_nyc(city: DemoCity) -> None:
    cells = city.truth.cells
    assert 1000 <= len(cells) <= 1800
    assert cells["h3_cell"].is_unique
    assert all(h3.is_valid_cell(h) and h3.get_resolution(h) == 8 for h in cells["h3_cell"])
    assert cells["lat"].between(LAT_MIN, LAT_MAX).all()
    assert cells["lng"].between(LNG_MIN, LNG_MAX).all()
    per_borough = cells["borough"].value_counts()
    assert len(per_borough) == 5 and per_borough.min() >= 100
    # one connected blob: every hex has an in-city neighbour, and most have six
    inside = set(cells["h3_cell"])
    n_nb = np.array([len(set(h3.grid_ring(h, 1)) & inside) for h in cells["h3_cell"]])
    assert n_nb.min() >= 1 and (n_nb == 6).mean() > 0.8


def test_points_lie_inside_nyc_and_in_their_planted_hex(city: DemoCity) -> None:
    p = _points(city.crashes)
    assert p["lat"].between(LAT_MIN, LAT_MAX).all() and p["lng"].between(LNG_MIN, LNG_MAX).all()
    planted = city.truth.crash_cells.set_index("COLLISION_ID")["h3_cell"]
    inside = set(city.truth.cells["h3_cell"])
    sample = p.sample(5000, random_state=1)
    got = [
        h3.latlng_to_cell(a, b, 8)
        for a, b in zip(sample["lat"].tolist(), sample["lng"].tolist(), strict=True)
    ]
    assert set(got) <= inside
    want = planted.reindex(sample["COLLISION_ID"]).tolist()
    assert got == want
    # also through the parent of the finer cell an ETL stores per crash (H3 does not nest)
    for res in (9, 10, 12):
        via_parent = [
            h3.cell_to_parent(h3.latlng_to_cell(a, b, res), 8)
            for a, b in zip(
                sample["lat"].tolist()[:2000], sample["lng"].tolist()[:2000], strict=True
            )
        ]
        assert via_parent == want[:2000], res
    # points are spread over the hex, not stacked on its centre
    assert sample["LOCATION"].nunique() > 4900


# --- planted effects, seen in the emitted records ---------------------------------------------
def test_daily_totals_agree_with_truth_within_poisson_noise(daily: pd.DataFrame) -> None:
    z = (daily["n"] - daily["expected_crashes"]) / np.sqrt(daily["expected_crashes"])
    assert abs(z.mean()) < 0.2
    assert 0.75 < z.var() < 1.3
    assert daily["expected_crashes"].mean() == pytest.approx(YEAR_2023.mean_daily_crashes)


def test_daily_expected_is_the_product_of_its_parts(city: DemoCity) -> None:
    d = city.truth.daily_expected
    parts = ["weekday_mult", "month_mult", "holiday_mult", "weather_mult", "volume_mult"]
    product = d[parts].prod(axis=1) * d["day_noise"] * city.truth.cells["base_rate"].sum()
    assert np.allclose(product, d["expected_crashes"], rtol=1e-9)
    t = city.truth
    rain = 1 + t.rain_uplift_per_mm * np.minimum(d["precip_mm"], t.rain_cap_mm)
    snow = 1 + t.snow_uplift_per_cm * np.minimum(d["snow_cm"], t.snow_cap_cm)
    assert np.allclose(rain * snow, d["weather_mult"])
    assert d["weekday_mult"].to_numpy().tolist() == [
        t.weekday_multiplier[w] for w in d["date"].dt.day_of_week
    ]


def test_rain_and_snow_days_have_more_crashes(daily: pd.DataFrame) -> None:
    dry = daily[(daily["prcp_in"] == 0) & (daily["snow_in"] == 0)]
    wet = daily[(daily["prcp_in"] >= 0.4) & (daily["snow_in"] == 0)]
    assert len(wet) >= 20 and len(dry) >= 150
    assert wet["n"].mean() > 1.2 * dry["n"].mean()
    snowy = daily[daily["snow_in"] >= 2.0]
    winter_dry = dry[dry["month"].isin([12, 1, 2, 3])]
    assert len(snowy) >= 1
    assert snowy["n"].mean() > 1.25 * winter_dry["n"].mean()
    # the ETL converts inches back; the planted precip is exactly that
    assert np.allclose(daily["precip_mm"], daily["prcp_in"] * 25.4)


def test_weekday_and_season_cycles(daily: pd.DataFrame) -> None:
    by_day = daily.groupby("weekday")["n"].mean()
    assert by_day[4] > 1.3 * by_day[6]  # Friday vs Sunday
    assert by_day.idxmax() == 4 and by_day.idxmin() == 6
    adjusted = daily["n"] / daily["weather_mult"] / daily["weekday_mult"]
    by_month = adjusted.groupby(daily["month"]).mean()
    assert by_month[[6, 7, 8, 9, 10]].mean() > 1.08 * by_month[[1, 2, 3]].mean()


def test_holidays_are_quieter(daily: pd.DataFrame, city: DemoCity) -> None:
    thanksgiving = daily.loc[daily["holiday"] == "Thanksgiving Day"].iloc[0]
    november_thursdays = daily[(daily["month"] == 11) & (daily["weekday"] == 3)]
    others = november_thursdays[november_thursdays["holiday"] == ""]
    assert thanksgiving["n"] < 0.8 * others["n"].mean()
    assert city.truth.holiday_multiplier["Thanksgiving Day"] < 1


def test_hotspots_and_corridors_stand_out(city: DemoCity) -> None:
    cells = city.truth.cells.set_index("h3_cell")
    counts = city.truth.crash_cells["h3_cell"].value_counts().reindex(cells.index, fill_value=0)
    assert 10 <= cells["is_hotspot"].sum() <= 20
    assert (counts[cells["is_hotspot"]] > 2 * counts.median()).all()
    corridor = counts[cells["is_corridor"]].mean()
    assert corridor > 1.5 * counts[~cells["is_corridor"] & ~cells["is_hotspot"]].mean()
    base = cells["base_rate"]
    for h in cells.index[cells["is_hotspot"]]:
        ring = [n for n in h3.grid_ring(h, 1) if n in base.index]
        assert base[h] > 2 * base[ring].median(), h
    # skewed like reality: most hexes quiet, a few very busy
    assert 0.08 < base.median() < 0.25
    assert base.between(0.05, 0.3).mean() > 0.5
    assert 1.0 < base.max() < 3.5
    assert base.quantile(0.99) > 5 * base.median()


def test_hour_of_day_profile(city: DemoCity) -> None:
    c = city.crashes
    hour = c["CRASH TIME"].str.split(":").str[0].astype(int)
    weekday = pd.to_datetime(c["CRASH DATE"], format="%m/%d/%Y").dt.day_of_week
    share = hour[weekday < 4].value_counts(normalize=True).sort_index()
    assert share[16:18].mean() > 3 * share[2:5].mean()  # evening peak vs night
    assert share[8] > share[6] and share[8] > share[10]  # a morning peak
    night = hour.isin([0, 1, 2, 3])
    assert night[weekday == 5].mean() > 1.5 * night[weekday < 4].mean()  # Friday night out


# --- weather -------------------------------------------------------------------------------
def test_weather_observed_is_ghcn_daily_in_us_units(city: DemoCity) -> None:
    w = city.weather_observed
    assert list(w.columns) == GHCN_HEADER
    assert all(pd.api.types.is_string_dtype(w[c]) for c in w.columns)
    assert (w["STATION"] == "DEMO0000001").all()
    assert (w["NAME"] == "DEMO CITY CENTRAL, XX US").all()
    dates = pd.to_datetime(w["DATE"], format="%Y-%m-%d")
    assert dates.tolist() == pd.date_range(YEAR_2023.start, YEAR_2023.end).tolist()
    assert w["PRCP"].str.fullmatch(r"\d+\.\d\d").all()
    assert w["SNOW"].str.fullmatch(r"\d+\.\d").all() and w["SNWD"].str.fullmatch(r"\d+\.\d").all()
    assert w["TMAX"].str.fullmatch(r"-?\d+").all() and w["AWND"].str.fullmatch(r"\d+\.\d\d").all()
    num = w[["AWND", "PRCP", "SNOW", "SNWD", "TMAX", "TMIN"]].astype(float)
    month = dates.dt.month
    assert (num["TMAX"] >= num["TMIN"]).all()
    assert num["TMAX"][month == 7].mean() > num["TMAX"][month == 1].mean() + 30  # degF
    assert 0.25 < (num["PRCP"] > 0).mean() < 0.42
    assert 30 < num["PRCP"].sum() < 60  # inches a year, like Central Park
    assert (num["SNOW"][~month.isin([12, 1, 2, 3])] == 0).all()
    assert 2 < num["AWND"].mean() < 12  # mph


def test_weather_forecast_is_open_meteo_json(city: DemoCity) -> None:
    f = city.weather_forecast
    assert f["timezone"] == "America/New_York"
    assert LAT_MIN < f["latitude"] < LAT_MAX and LNG_MIN < f["longitude"] < LNG_MAX
    keys = [
        "precipitation_sum",
        "snowfall_sum",
        "temperature_2m_max",
        "temperature_2m_min",
        "wind_speed_10m_max",
    ]
    units = ["mm", "cm", "°C", "°C", "km/h"]
    assert [f["daily_units"][k] for k in keys] == units
    expected_days = [str(YEAR_2023.end + dt.timedelta(days=i)) for i in range(1, 8)]
    assert f["daily"]["time"] == expected_days
    for k in keys:
        assert len(f["daily"][k]) == 7 and all(isinstance(x, float) for x in f["daily"][k])
    assert all(a >= b for a, b in zip(*(f["daily"][k] for k in keys[2:4]), strict=True))
    assert json.loads(json.dumps(f)) == f


# --- traffic counts ------------------------------------------------------------------------
def test_traffic_counts_are_dot_15_minute_rows(city: DemoCity) -> None:
    t = city.traffic_counts
    assert list(t.columns) == DOT_HEADER
    assert all(pd.api.types.is_string_dtype(t[c]) for c in t.columns)
    assert 20_000 < len(t) <= 300_000
    assert set(t["MM"]) == {"0", "15", "30", "45"}
    assert set(t["HH"]) == {str(h) for h in range(24)}
    assert set(t["Direction"]) <= {"NB", "SB", "EB", "WB"}
    assert t["Vol"].str.fullmatch(r"\d+").all()
    key = ["SegmentID", "Direction", "Yr", "M", "D", "HH", "MM"]
    assert not t.duplicated(key).any()
    segments = city.truth.count_segments
    assert t["SegmentID"].nunique() == len(segments) == YEAR_2023.n_count_segments
    days_counted = t.groupby("SegmentID")[["Yr", "M", "D"]].apply(
        lambda d: len(d.drop_duplicates())
    )
    assert days_counted.max() < 100  # sparse campaigns, not continuous counts


def test_traffic_points_reproject_into_their_hex(city: DemoCity) -> None:
    t = city.traffic_counts.drop_duplicates("SegmentID")
    xy = t["WktGeom"].str.extract(r"^POINT \((-?[\d.]+) (-?[\d.]+)\)$").astype(float)
    assert xy.notna().all().all()
    back = Transformer.from_crs(2263, 4326, always_xy=True)
    lng, lat = back.transform(xy[0].to_numpy(), xy[1].to_numpy())
    got = [h3.latlng_to_cell(a, b, 8) for a, b in zip(lat, lng, strict=True)]
    planted = city.truth.count_segments.set_index("SegmentID")["h3_cell"]
    assert got == planted.reindex(t["SegmentID"]).tolist()
    assert set(t["Boro"]) <= {"North Side", "Harbor", "Westview", "Eastgate", "South Shore"}


def test_traffic_volumes_follow_the_planted_volume(city: DemoCity) -> None:
    t = city.traffic_counts.assign(Vol=lambda d: d["Vol"].astype(int))
    per_day = t.groupby(["SegmentID", "Yr", "M", "D"])["Vol"].sum().groupby("SegmentID").mean()
    cells = city.truth.cells.set_index("h3_cell")
    seg = city.truth.count_segments.set_index("SegmentID")
    typical = cells["typical_volume"].reindex(seg["h3_cell"]).set_axis(seg.index)
    ratio = per_day / typical.reindex(per_day.index)
    assert ratio.between(0.85, 1.15).all()
    on_corridor = cells["is_corridor"].reindex(seg["h3_cell"]).to_numpy()
    assert on_corridor.mean() > 2 * cells["is_corridor"].mean()  # corridors over-represented
    hourly = t.groupby(t["HH"].astype(int))["Vol"].sum()
    assert hourly[8] > 4 * hourly[3] and hourly[17] > 4 * hourly[3]


# --- files ---------------------------------------------------------------------------------
def test_write_demo_files_round_trips(tmp_path: Path) -> None:
    city = generate_demo_city(MONTH)
    paths = write_demo_files(city, tmp_path / "demo")
    assert {k: p.name for k, p in paths.items()} == {
        "crashes": "crashes.csv",
        "weather_observed": "weather_ghcn.csv",
        "weather_forecast": "weather_forecast.json",
        "traffic_counts": "traffic_counts.csv",
        "precincts": "precincts.geojson",
    }
    assert json.loads(paths["precincts"].read_text()) == city.precincts
    for name in ("crashes", "weather_observed", "traffic_counts"):
        back = pd.read_csv(paths[name], dtype=str, keep_default_na=False)
        pd.testing.assert_frame_equal(back, getattr(city, name), check_dtype=False)
    with paths["weather_forecast"].open(encoding="utf-8") as fh:
        assert json.load(fh) == city.weather_forecast
    assert paths["crashes"].read_text(encoding="utf-8").startswith("CRASH DATE,CRASH TIME,")


# --- the default city ----------------------------------------------------------------------
@pytest.mark.slow
def test_default_city_size_and_effects() -> None:
    city = generate_demo_city(DemoConfig())
    c = city.crashes
    assert 300_000 < len(c) < 360_000
    days = pd.to_datetime(c["CRASH DATE"], format="%m/%d/%Y")
    assert days.min() == pd.Timestamp("2023-01-01") and days.max() == pd.Timestamp("2025-12-31")
    assert len(city.weather_observed) == 1096
    assert city.weather_forecast["daily"]["time"][0] == "2026-01-01"
    assert len(city.traffic_counts) <= 300_000
    assert 1000 <= len(city.truth.cells) <= 1800
    assert city.truth.daily_expected["expected_crashes"].mean() == pytest.approx(300.0)
    # three winters: snow uplift clearly visible against dry winter days
    n = days.value_counts().sort_index().to_numpy()
    d = city.truth.daily_expected
    cold = d["date"].dt.month.isin([12, 1, 2, 3]).to_numpy()
    snowy = (d["snow_cm"] >= 5).to_numpy()
    dry = (d["precip_mm"] == 0).to_numpy()
    assert snowy.sum() >= 5
    assert n[snowy].mean() > 1.3 * n[cold & dry].mean()
    p = _points(c).sample(3000, random_state=2)
    planted = city.truth.crash_cells.set_index("COLLISION_ID")["h3_cell"]
    got = [h3.latlng_to_cell(a, b, 8) for a, b in zip(p["lat"], p["lng"], strict=True)]
    assert got == planted.reindex(p["COLLISION_ID"]).tolist()
    assert re.fullmatch(r"\d+", c["COLLISION_ID"].iloc[-1])
