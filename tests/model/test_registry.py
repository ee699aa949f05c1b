"""MLflow registry: runs, artifacts, aliases and the promotion rule, in a temporary store."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest

from core import schema as s
from core.reads.fingerprint import data_fingerprint
from core.warehouse import create_schema, get_engine
from model.backtest import BacktestResult, run_backtest
from model.config import ModelParams, load_model_params
from model.features import FeatureInputs, build_features
from model.registry.loading import list_versions, load_champion, load_version
from model.registry.promotion import RECALL_TOLERANCE, decide
from model.registry.store import CHALLENGER, CHAMPION, REGISTERED_MODEL, make_client
from model.registry.tracking import TrainingRun, log_training_run
from model.risk_model import RiskModel

START, END = dt.date(2023, 1, 1), dt.date(2023, 8, 31)
TRAIN_END = dt.date(2023, 7, 31)


def synthetic_inputs(seed: int = 0) -> FeatureInputs:
    """61 Manhattan hexes, 8 months of Poisson crashes with a rain uplift, daily weather."""
    rng = np.random.default_rng(seed)
    centre = h3.latlng_to_cell(40.758, -73.9855, 8)
    cells = sorted(h3.grid_disk(centre, 4))
    latlng = np.array([h3.cell_to_latlng(c) for c in cells])
    hexes = pd.DataFrame(
        {
            s.H3_CELL: pd.Series(cells, dtype="str"),
            s.BOROUGH: pd.Series(["MANHATTAN"] * len(cells), dtype="str"),
            s.LAT: latlng[:, 0],
            s.LNG: latlng[:, 1],
        }
    )
    days = pd.date_range(START, END, freq="D")
    precip = np.where(rng.random(len(days)) < 0.3, rng.gamma(1.5, 6.0, len(days)), 0.0)
    weather = pd.DataFrame(
        {
            s.DATE: days.astype("datetime64[us]"),
            s.PRECIP_MM: precip,
            s.SNOW_CM: 0.0,
            s.SNOW_DEPTH_CM: 0.0,
            s.TMAX_C: 20 + rng.normal(0, 5, len(days)),
            s.TMIN_C: 10 + rng.normal(0, 5, len(days)),
            s.WIND_MS: rng.gamma(4, 1, len(days)),
            "weather_kind": "observed",
        }
    )
    base = rng.lognormal(-1.2, 0.9, len(cells))
    rate = base[None, :] * (1 + 0.03 * np.minimum(precip, 25))[:, None]
    counts = rng.poisson(rate)
    day_idx, cell_idx = np.nonzero(counts)
    crashes = pd.DataFrame(
        {
            s.H3_CELL: pd.Series(np.array(cells)[cell_idx], dtype="str"),
            s.DATE: days[day_idx].astype("datetime64[us]"),
            "crashes": counts[day_idx, cell_idx].astype("int64"),
            "injuries": rng.binomial(counts[day_idx, cell_idx], 0.3).astype("int64"),
            "killed": np.zeros(len(day_idx), dtype="int64"),
        }
    )
    volume = pd.DataFrame({s.H3_CELL: [], "typical_volume": [], "volume_imputed": []}).astype(
        {s.H3_CELL: "str", "typical_volume": "float64", "volume_imputed": "bool"}
    )
    return FeatureInputs(crashes=crashes, hexes=hexes, weather=weather, volume=volume, res=8)


def fast_params() -> ModelParams:
    return load_model_params().with_overrides(
        lightgbm={
            "num_boost_round": 60,
            "learning_rate": 0.2,
            "num_leaves": 7,
            "min_data_in_leaf": 50,
            "early_stopping_rounds": 10,
            "num_threads": 1,
        },
        training={"validation_days": 30, "reference_days": 60},
        baselines={"ewma_halflives_days": [30.0], "neighbour_ring_weights": [[1.0, 0.5, 0.25]]},
    )


@pytest.fixture(scope="module")
def trained() -> tuple[FeatureInputs, BacktestResult, RiskModel]:
    inputs = synthetic_inputs()
    backtest = run_backtest(
        inputs,
        train_end=TRAIN_END,
        start=TRAIN_END + dt.timedelta(days=1),
        end=END,
        params=fast_params(),
    )
    return inputs, backtest, backtest.folds[0].models["model"]


def with_model_metrics(backtest: BacktestResult, **values: float) -> BacktestResult:
    """The same backtest with some of the model row's metrics replaced."""
    table = backtest.table.copy()
    for metric, value in values.items():
        table.loc["model", metric] = value
    return dataclasses.replace(backtest, table=table)


FINGERPRINT = {
    "crashes": {"rows": 10, "first": "2023-01-01", "last": "2023-08-31", "sha256": "ab" * 32},
    "combined": "cd" * 32,
}


@pytest.fixture(scope="module")
def store(
    tmp_path_factory: pytest.TempPathFactory,
    trained: tuple[FeatureInputs, BacktestResult, RiskModel],
) -> dict[str, object]:
    """Three versions: the first (champion), a worse one, a better one."""
    inputs, backtest, model = trained
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    dev = float(backtest.table.loc["model", "poisson_deviance"])
    recall = float(backtest.table.loc["model", "recall_at_k"])
    features = build_features(
        inputs, pd.date_range("2023-07-01", TRAIN_END), fast_params().features
    )
    import mlflow

    global_uri = mlflow.get_tracking_uri()
    first = log_training_run(model, backtest, FINGERPRINT, tracking_uri=uri, shap_features=features)
    assert mlflow.get_tracking_uri() == global_uri  # the process-wide URI is left alone
    worse = log_training_run(
        model,
        with_model_metrics(backtest, poisson_deviance=dev * 1.10),
        FINGERPRINT,
        tracking_uri=uri,
    )
    better = log_training_run(
        model,
        with_model_metrics(backtest, poisson_deviance=dev * 0.95, recall_at_k=recall),
        FINGERPRINT,
        tracking_uri=uri,
    )
    return {"uri": uri, "folder": folder, "runs": (first, worse, better), "features": features}


def _runs(store: dict[str, object]) -> tuple[TrainingRun, TrainingRun, TrainingRun]:
    runs = store["runs"]
    assert isinstance(runs, tuple)
    return runs  # type: ignore[return-value]


def test_first_version_is_champion_and_aliases_move(store: dict[str, object]) -> None:
    first, worse, better = _runs(store)
    assert (first.version, worse.version, better.version) == ("1", "2", "3")
    assert first.promoted and first.decision.alias == CHAMPION
    assert not worse.promoted and worse.decision.alias == CHALLENGER
    assert "not below" in worse.decision.reason
    assert better.promoted
    client = make_client(str(store["uri"]))
    assert str(client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION).version) == "3"
    # the challenger alias stays on the rejected version 2
    assert str(client.get_model_version_by_alias(REGISTERED_MODEL, CHALLENGER).version) == "2"
    assert len(client.search_registered_models()) == 1


def test_decision_is_logged_with_both_numbers(store: dict[str, object]) -> None:
    _, worse, better = _runs(store)
    client = make_client(str(store["uri"]))
    tags = client.get_run(worse.run_id).data.tags
    params = client.get_run(worse.run_id).data.params
    assert tags["promotion.decision"] == "not promoted"
    assert tags["promotion.champion_version"] == "1"
    champion_dev = float(tags["promotion.champion_poisson_deviance"])
    challenger_dev = float(tags["promotion.challenger_poisson_deviance"])
    assert challenger_dev == pytest.approx(champion_dev * 1.10)
    assert params["promotion.decision"] == "not promoted"
    better_tags = client.get_run(better.run_id).data.tags
    assert better_tags["promotion.decision"] == "promoted"
    assert float(better_tags["promotion.challenger_poisson_deviance"]) < float(
        better_tags["promotion.champion_poisson_deviance"]
    )


def test_run_has_params_metrics_and_artifacts(store: dict[str, object]) -> None:
    first, _, _ = _runs(store)
    client = make_client(str(store["uri"]))
    run = client.get_run(first.run_id)
    params, metrics = run.data.params, run.data.metrics
    assert params["lightgbm.objective"] == "poisson"
    assert params["train_end"] == TRAIN_END.isoformat()
    assert params["data.crashes.rows"] == "10"
    assert "class_threshold_4" in params
    for method in ("model", "historical_average", "ewma_history", "neighbour_smoothed"):
        for metric in ("poisson_deviance", "recall_at_k", "hit_rate_10"):
            assert f"{method}.{metric}" in metrics, (method, metric)
    assert "train.dispersion" in metrics
    paths = {a.path for a in client.list_artifacts(first.run_id)}
    assert {"backtest", "shap", "risk_model", "model_card.md", "data_fingerprint.json"} <= paths
    backtest_files = {a.path for a in client.list_artifacts(first.run_id, "backtest")}
    assert {"backtest/table.csv", "backtest/table.json"} <= backtest_files
    shap_files = {a.path for a in client.list_artifacts(first.run_id, "shap")}
    assert {"shap/summary.json", "shap/summary.png"} <= shap_files

    local = Path(client.download_artifacts(first.run_id, "", str(store["folder"] / "dl")))
    summary = json.loads((local / "shap" / "summary.json").read_text())
    assert summary["kind"] == "mean_abs_shap"
    assert set(summary["importance"]) == set(load_champion(str(store["uri"]))[0].feature_names)
    card = (local / "model_card.md").read_text()
    for heading in ("Intended use", "Training data", "Features", "Objective", "Risk classes",
                    "Backtest against baselines", "Limitations"):  # fmt: skip
        assert f"## {heading}" in card
    assert "dominated by places that are always dangerous" in card
    assert "historical_average" in card
    table = json.loads((local / "backtest" / "table.json").read_text())
    assert "model" in table and "historical_average" in table
    # the model is stored with the LightGBM flavour, its crash booster only there
    risk_model_files = {a.path for a in client.list_artifacts(first.run_id, "risk_model")}
    assert "risk_model/model.json" in risk_model_files
    assert "risk_model/booster.txt" not in risk_model_files
    version = client.get_model_version(REGISTERED_MODEL, first.version)
    logged = client.get_logged_model(str(version.source).split("/")[-1])
    mlmodel = Path(logged.artifact_location.removeprefix("file://")) / "MLmodel"
    assert "lightgbm:" in mlmodel.read_text()


def test_load_champion_predicts_like_the_original(
    store: dict[str, object], trained: tuple[FeatureInputs, BacktestResult, RiskModel]
) -> None:
    _, _, model = trained
    loaded, version = load_champion(str(store["uri"]))
    assert version == "3"
    features = store["features"]
    assert isinstance(features, pd.DataFrame)
    pd.testing.assert_frame_equal(loaded.predict(features), model.predict(features))
    assert loaded.thresholds == model.thresholds
    assert loaded.dispersion == model.dispersion
    assert loaded.feature_names == model.feature_names
    first = load_version(str(store["uri"]), 1)
    np.testing.assert_allclose(first.predict(features)["score"], model.predict(features)["score"])


def test_list_versions(store: dict[str, object]) -> None:
    versions = list_versions(str(store["uri"]))
    assert list(versions["version"]) == ["3", "2", "1"]
    assert list(versions["aliases"]) == [CHAMPION, CHALLENGER, ""]
    assert versions["model.poisson_deviance"].notna().all()
    assert list(versions["decision"]) == ["promoted", "not promoted", "promoted"]


def test_other_backtest_window_is_not_compared(
    store: dict[str, object], trained: tuple[FeatureInputs, BacktestResult, RiskModel]
) -> None:
    _, backtest, model = trained
    shifted = dataclasses.replace(
        with_model_metrics(backtest, poisson_deviance=0.0),
        params={**backtest.params, "start": dt.date(2023, 8, 2)},
    )
    run = log_training_run(model, shifted, FINGERPRINT, tracking_uri=str(store["uri"]))
    assert not run.promoted
    assert "backtested on" in run.decision.reason
    client = make_client(str(store["uri"]))
    assert str(client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION).version) == "3"


def test_decide_rule() -> None:
    champion = {"model.poisson_deviance": 0.50, "model.recall_at_k": 0.30}
    better = decide(
        {"model.poisson_deviance": 0.49, "model.recall_at_k": 0.30 - RECALL_TOLERANCE / 2},
        champion,
        champion_version="1",
    )
    assert better.promoted
    assert (better.champion_deviance, better.challenger_deviance) == (0.50, 0.49)
    worse_ranking = decide(
        {"model.poisson_deviance": 0.49, "model.recall_at_k": 0.30 - 2 * RECALL_TOLERANCE},
        champion,
        champion_version="1",
    )
    assert not worse_ranking.promoted
    assert "Recall@K" in worse_ranking.reason
    tie = decide(champion, champion, champion_version="1")
    assert not tie.promoted


def test_data_fingerprint_changes_with_data(tmp_path: Path) -> None:
    engine = get_engine(f"sqlite:///{tmp_path / 'wh.sqlite'}")
    create_schema(engine)
    empty = data_fingerprint(engine, 8)
    assert empty["crashes"]["rows"] == 0
    from core.warehouse import crashes_table, replace_rows
    from etl.crashes import with_parent_cells

    row = pd.DataFrame(
        {
            s.COLLISION_ID: ["1"],
            s.CRASHED_AT: [dt.datetime(2024, 1, 2, 8)],
            s.CRASH_DATE: [dt.date(2024, 1, 2)],
            s.LAT: [40.75],
            s.LNG: [-73.98],
            s.H3_CELL: ["8a2a1072b59ffff"],
            s.SOURCE: ["test"],
            "row_hash": ["0" * 16],
            "run_id": ["r"],
        }
    )
    replace_rows(engine, crashes_table, with_parent_cells(row))
    one = data_fingerprint(engine, 8)
    assert one["crashes"] | {"sha256": None} == {
        "rows": 1, "first": "2024-01-02", "last": "2024-01-02", "sha256": None
    }  # fmt: skip
    assert one["combined"] != empty["combined"]
    assert data_fingerprint(engine, 8) == one  # deterministic
    replace_rows(engine, crashes_table, row.assign(row_hash=["1" * 16]))  # a revised record
    assert data_fingerprint(engine, 8)["crashes"]["sha256"] != one["crashes"]["sha256"]


def test_empty_store(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'empty.db'}"
    assert list_versions(uri).empty
    with pytest.raises(LookupError):
        load_champion(uri)


def test_backtests_per_target_and_tour_are_logged_and_read_back(
    store: dict[str, object], trained: tuple[FeatureInputs, BacktestResult, RiskModel]
) -> None:
    from model.registry.loading import run_artifacts

    _, backtest, model = trained
    night = with_model_metrics(backtest, recall_at_k=0.5)
    run = log_training_run(
        model,
        backtest,
        FINGERPRINT,
        tracking_uri=str(store["uri"]),
        promote=False,
        by_forecast={("crashes", "day"): backtest, ("pedestrian", "23-07"): night},
    )
    artifacts = run_artifacts(str(store["uri"]), run.run_id)
    assert set(artifacts.by_forecast) == {("crashes", "day"), ("pedestrian", "23-07")}
    table, lift = artifacts.by_forecast[("pedestrian", "23-07")]
    assert table.loc["model", "recall_at_k"] == 0.5
    assert list(table.index) == list(backtest.table.index)
    assert list(lift.columns) == list(artifacts.lift.columns) and len(lift) == len(artifacts.lift)
    # a run logged before targets and tours reads as all crashes for the whole day
    older = run_artifacts(str(store["uri"]), _runs(store)[0].run_id)
    assert set(older.by_forecast) == {("crashes", "day")}
    assert older.by_forecast[("crashes", "day")][0].equals(older.backtest)
