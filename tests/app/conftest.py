"""A tiny synthetic city for the app tests, written straight into a temporary warehouse.

37 res-8 hexes (a ring-3 disk) in two boroughs, 60 days of crashes, one ETL run with rejects,
an area layer, and stored predictions for the last week and tomorrow (all crashes, injury
crashes and pedestrian injuries, for the whole day and each NYPD tour, with usual levels, a
pedestrian corridor and a night-tour spike), so the app tests do not depend on the model
code. Settings come from ``VZ_*`` environment variables; every fixture
clears the settings and Streamlit caches so no state leaks between warehouses.

AppTest has no server and no login: every test runs the app as ``vz serve`` does on loopback
without login (every page open), whatever the working directory and whatever secrets the
developer keeps in ``.streamlit/secrets.toml``. Tests of the login gate set ``at.secrets``
(an ``[auth]`` section) and ``at.user`` (the signed-in user's claims).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit import config as st_config
from streamlit.runtime.secrets import Secrets

from core import schema as s
from core.settings import get_settings
from core.warehouse import (
    areas_table,
    crashes_table,
    create_schema,
    etl_run,
    get_engine,
    hex_cells_table,
    predictions_table,
    replace_rows,
    upsert,
    write_rejects,
)
from etl.crashes import with_parent_cells
from etl.hexes import place_labels

AS_OF = dt.date(2025, 12, 31)
TOMORROW = AS_OF + dt.timedelta(days=1)
CENTRE = (40.75, -73.98)
RES = 8
HISTORY_DAYS = 60
FORECAST_DAYS = 7  # stored forecasts for AS_OF - 6 .. AS_OF, plus tomorrow
BOROUGHS = ("NORTH SIDE", "HARBOR")
STREETS = ("DEMO BOULEVARD", "HARBOR EXPRESSWAY", "MAPLE AVENUE", "OAK STREET")
MODEL_VERSION = "3"
# Stored forecasts besides all crashes over the whole day (no cyclists: the option must not
# show). Each target's share of the crash rate, and each tour's share of the day.
TARGET_SHARES = {"crashes": 1.0, "injury": 0.3, "pedestrian": 0.1}
TOUR_SHARES = {"day": 1.0, "07-15": 0.4, "15-23": 0.4, "23-07": 0.2}
# The pedestrian corridor: hexes west of the centre carry four times the pedestrian rate, so
# pedestrian forecasts rank other hexes first. The night spike: a modest corridor hex (its
# rate at most SPIKE_BELOW of the corridor's top) expects 2.5 times its usual pedestrian count
# in tomorrow's night tour: the most above usual, yet not the most expected.
PEDESTRIAN_CORRIDOR = 4.0
NIGHT_SPIKE = 2.5
SPIKE_BELOW = 0.3
SPIKE_DISPERSION = 0.05  # a sure forecast: only the spike's 80 % interval lies above usual


@dataclass(frozen=True)
class City:
    var_dir: Path
    hexes: pd.DataFrame  # h3_cell, borough, rate
    crashes: pd.DataFrame
    predictions: pd.DataFrame  # all crashes over the whole day
    forecasts: pd.DataFrame  # every stored row: every target and tour
    as_of: dt.date = AS_OF
    tomorrow: dt.date = TOMORROW
    boroughs: tuple[str, ...] = BOROUGHS

    @property
    def riskiest(self) -> str:
        day = self.predictions[self.predictions["target_date"] == TOMORROW]
        return str(day.sort_values("expected_crashes").iloc[-1][s.H3_CELL])

    def tomorrow_of(self, target: str, tour: str) -> pd.DataFrame:
        """Tomorrow's stored rows of one target and tour."""
        rows = self.forecasts
        keep = (
            (rows["target_date"] == TOMORROW) & (rows[s.TARGET] == target) & (rows[s.TOUR] == tour)
        )
        return rows[keep]

    @property
    def night_spike(self) -> str:
        """The hex whose pedestrian forecast for tomorrow's night tour is furthest above its
        usual level."""
        night = self.tomorrow_of("pedestrian", "23-07")
        return str(night.loc[(night["expected_crashes"] - night[s.USUAL]).idxmax(), s.H3_CELL])


def city_hexes() -> pd.DataFrame:
    cells = sorted(h3.grid_disk(h3.latlng_to_cell(*CENTRE, RES), 3))
    centres = np.array([h3.cell_to_latlng(c) for c in cells])
    borough = np.where(centres[:, 0] >= CENTRE[0], BOROUGHS[0], BOROUGHS[1])
    distance = np.hypot(centres[:, 0] - CENTRE[0], (centres[:, 1] - CENTRE[1]) * 0.76)
    rate = 0.3 + 2.5 * np.exp(-((distance / 0.012) ** 2))  # a hotspot in the middle
    return pd.DataFrame(
        {
            s.H3_CELL: cells,
            s.BOROUGH: borough,
            s.LAT: centres[:, 0],
            s.LNG: centres[:, 1],
            "rate": rate,
        }
    )


def injured(rng: np.random.Generator) -> dict[str, int]:
    """Three in ten crashes injure someone; half of those a pedestrian."""
    anyone = rng.random() < 0.3
    pedestrian = anyone and rng.random() < 0.5
    return {s.PERSONS_INJURED: int(anyone), s.PEDESTRIANS_INJURED: int(pedestrian)}


def city_crashes(hexes: pd.DataFrame, rng: np.random.Generator, source: str) -> pd.DataFrame:
    rows = []
    days = [AS_OF - dt.timedelta(days=d) for d in range(HISTORY_DAYS)]
    for cell, borough, rate in zip(hexes[s.H3_CELL], hexes[s.BOROUGH], hexes["rate"], strict=True):
        children = sorted(h3.cell_to_children(cell, 10))
        for day in days:
            for _ in range(rng.poisson(rate)):
                child = children[rng.integers(len(children))]
                lat, lng = h3.cell_to_latlng(child)
                minute = int(rng.integers(24 * 60))
                rows.append(
                    {
                        s.COLLISION_ID: f"T{len(rows):06d}",
                        s.CRASHED_AT: dt.datetime.combine(day, dt.time(minute // 60, minute % 60)),
                        s.CRASH_DATE: day,
                        s.LAT: lat,
                        s.LNG: lng,
                        s.H3_CELL: child,
                        s.BOROUGH: borough,
                        s.ON_STREET: STREETS[int(rng.integers(len(STREETS)))],
                        s.CROSS_STREET: "ELM STREET",
                        s.FACTOR_1: "Unspecified",
                        s.VEHICLE_1: "Sedan",
                        **{c: 0 for c in s.INJURY_COLUMNS},
                        **injured(rng),
                        s.SOURCE: source,
                        s.SOURCE_UPDATED_AT: dt.datetime.combine(day, dt.time(23)),
                    }
                )
    return pd.DataFrame(rows)


def stored_reasons(expected: float, day: dt.date) -> list[dict[str, object]]:
    """Top reasons as the scoring job stores them: feature, plain words, SHAP contribution."""
    month = f"many crashes here in the past month ({expected * 28:.0f})"
    return [
        {"feature": "crashes_28d", "text": month, "contribution": 0.4},
        {"feature": "precip_mm", "text": "rain forecast (6 mm)", "contribution": 0.12},
        {"feature": "weekday", "text": f"{day:%A}", "contribution": 0.05},
        {"feature": "typical_volume", "text": "quiet streets", "contribution": -0.08},
    ]


def city_predictions(hexes: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Every stored forecast row: per day, target and tour one row per hex, with its usual
    level (the rate without the day's swing)."""
    rows = []
    days = [AS_OF - dt.timedelta(days=d) for d in range(FORECAST_DAYS)] + [TOMORROW]
    corridor = np.where(hexes[s.LNG] < CENTRE[1], PEDESTRIAN_CORRIDOR, 1.0)
    in_corridor = np.where(corridor > 1, hexes["rate"], 0.0)
    modest = np.where(in_corridor <= SPIKE_BELOW * in_corridor.max(), in_corridor, 0.0)
    spike_cell = hexes[s.H3_CELL][int(np.argmax(modest))]
    for day in days:
        swing = rng.uniform(0.8, 1.25)
        for target, share in TARGET_SHARES.items():
            usual_day = hexes["rate"].to_numpy() * share
            if target == "pedestrian":
                usual_day = usual_day * corridor
            for tour, tour_share in TOUR_SHARES.items():
                usual = usual_day * tour_share
                expected = usual * swing
                spike_day = (target, tour, day) == ("pedestrian", "23-07", TOMORROW)
                if spike_day:
                    expected = np.where(
                        hexes[s.H3_CELL] == spike_cell, usual * NIGHT_SPIKE, expected
                    )
                cuts = np.quantile(expected, [0.5, 0.75, 0.9, 0.975])
                risk = np.searchsorted(cuts, expected, side="right")
                for cell, mu, normal, k in zip(
                    hexes[s.H3_CELL], expected, usual, risk, strict=True
                ):
                    probs = np.full(5, 0.05)
                    probs[k] = 0.8
                    rows.append(
                        {
                            "target_date": day,
                            "res": RES,
                            s.H3_CELL: cell,
                            "model_version": MODEL_VERSION,
                            s.TARGET: target,
                            s.TOUR: tour,
                            "risk_class": int(k),
                            **{f"p_class_{i}": float(probs[i] / probs.sum()) for i in range(5)},
                            "expected_crashes": float(mu),
                            "expected_injuries": float(mu * 0.3),
                            "score": float(np.log(mu)),
                            s.DISPERSION: SPIKE_DISPERSION if spike_day else 0.3,
                            s.CLASSES_CALIBRATED: False,
                            s.USUAL: float(normal),
                            "reasons": json.dumps(stored_reasons(mu, day)),
                            "weather_kind": "forecast" if day == TOMORROW else "observed",
                            "created_at": dt.datetime.combine(
                                day - dt.timedelta(days=1), dt.time(20)
                            ),
                        }
                    )
    return pd.DataFrame(rows)


def build_city(var_dir: Path, *, source: str = "demo", predictions: bool = True) -> City:
    """Write the synthetic city into ``var_dir/warehouse.sqlite`` (settings must point there)."""
    rng = np.random.default_rng(7)
    engine = get_engine(f"sqlite:///{var_dir / 'warehouse.sqlite'}")
    create_schema(engine)
    hexes = city_hexes()
    crashes = city_crashes(hexes, rng, source)
    with etl_run(engine, "crashes", source) as run:
        rejects = pd.DataFrame(
            {
                s.RECORD_KEY: ["R1", "R2", "R3"],
                s.REASON: ["missing coordinates", "missing coordinates", "unparseable date"],
                s.RAW: [{"LATITUDE": ""}, {"LATITUDE": ""}, {"CRASH DATE": "13/45/2025"}],
            }
        )
        run.rows_in = len(crashes) + len(rejects)
        run.counts += upsert(
            engine,
            crashes_table,
            with_parent_cells(crashes),
            run_id=run.run_id,
            newer_column=s.SOURCE_UPDATED_AT,
        )
        run.rows_rejected = write_rejects(engine, run, rejects)
    cells = hexes.assign(
        res=RES, n_crashes=0, place=hexes[s.H3_CELL].map(place_labels(engine, RES))
    )[["res", s.H3_CELL, s.BOROUGH, s.LAT, s.LNG, "n_crashes", s.PLACE]]
    replace_rows(engine, hex_cells_table, cells, res=RES)
    precincts = hexes.assign(
        layer=s.PRECINCT,
        res=RES,
        area=np.where(hexes[s.LNG] < CENTRE[1], "Precinct 2", "Precinct 10"),
    )
    replace_rows(engine, areas_table, precincts[["layer", "res", s.H3_CELL, "area"]])
    forecasts = city_predictions(hexes, rng) if predictions else pd.DataFrame()
    preds = forecasts
    if predictions:
        replace_rows(engine, predictions_table, forecasts)
        whole = (forecasts[s.TARGET] == s.ALL_CRASHES) & (forecasts[s.TOUR] == s.WHOLE_DAY)
        preds = forecasts[whole].reset_index(drop=True)
    return City(
        var_dir=var_dir, hexes=hexes, crashes=crashes, predictions=preds, forecasts=forecasts
    )


def clear_caches() -> None:
    get_settings.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture(autouse=True)
def served_on_loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The app as served on 127.0.0.1 with no secrets file (no login)."""
    before = st_config.get_option("server.address")
    st_config.set_option("server.address", "127.0.0.1")
    no_secrets = Secrets()
    no_secrets._secrets = {}
    monkeypatch.setattr(st, "secrets", no_secrets)
    yield
    st_config.set_option("server.address", before)


@pytest.fixture
def use_var_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Point the settings at a folder (warehouse and model registry inside it)."""

    def point(var_dir: Path, **env: str) -> None:
        monkeypatch.setenv("VZ_VAR_DIR", str(var_dir))
        monkeypatch.setenv("VZ_DATABASE_URL", f"sqlite:///{var_dir / 'warehouse.sqlite'}")
        monkeypatch.setenv("VZ_MLFLOW_TRACKING_URI", f"sqlite:///{var_dir / 'mlflow.sqlite'}")
        monkeypatch.setenv("VZ_H3_RES", str(RES))
        for name in (
            "VZ_PUBLIC_MODE",
            "VZ_LIVE",
            "VZ_INSECURE_NO_AUTH",
            "VZ_STAFF_EMAILS",
            "VZ_STAFF_EMAIL_DOMAINS",
            "VZ_STAFF_GROUPS",
            "VZ_STAFF_GROUPS_CLAIM",
        ):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        clear_caches()

    yield point
    clear_caches()


@pytest.fixture
def city_builder() -> Callable[..., City]:
    """``build_city(var_dir, source=…, predictions=…)`` for tests that need their own city."""
    return build_city


@pytest.fixture(scope="session")
def city_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, City]:
    var_dir = tmp_path_factory.mktemp("city")
    return var_dir, build_city(var_dir)


@pytest.fixture
def city(city_dir: tuple[Path, City], use_var_dir: Callable[..., None]) -> City:
    """The demo-source synthetic city with forecasts."""
    var_dir, built = city_dir
    use_var_dir(var_dir)
    return built
