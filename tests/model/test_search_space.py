"""The tuning search space: typed in ``model/config.py``, read from ``model/params.yaml``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from model.config import LightGBMParams, ModelParams, load_model_params, load_search_space


def test_the_shipped_search_space_names_lightgbm_parameters() -> None:
    space = load_search_space()
    assert space.lightgbm
    assert set(space.lightgbm) <= set(LightGBMParams.model_fields)
    load_model_params()  # the search section does not disturb the model parameters


def _params_file(tmp_path: Path, search: object) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"lightgbm": {"num_leaves": 31}, "search_space": search}))
    return path


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"lightgbm": {"num_leafs": {"low": 7, "high": 63}}}, "not LightGBM parameters: num_leafs"),
        ({"lightgbm": {"num_leaves": {"low": 63, "high": 7}}}, "low < high"),
        ({"lightgbm": {"lambda_l2": {"low": 0, "high": 1, "log": True}}}, "low > 0"),
        ({"lightgbm": {"min_data_in_leaf": {"choices": []}}}, "choices"),
        ({"lightgbm": {}}, "empty"),
    ],
)
def test_a_bad_search_space_is_refused_with_its_reason(
    tmp_path: Path, search: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load_search_space(_params_file(tmp_path, search))


def test_a_params_file_without_a_search_space_says_so(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("lightgbm: {num_leaves: 31}\n")
    assert load_model_params(path).lightgbm.num_leaves == 31
    with pytest.raises(ValueError, match="no search_space section"):
        load_search_space(path)


def test_ray_samples_stay_inside_the_space() -> None:
    pytest.importorskip("ray")
    import numpy as np

    from jobs.tune import plain_config, ray_search_space

    space = load_search_space()
    samplers = ray_search_space(space)
    rng = np.random.default_rng(0)
    for _ in range(50):
        config = plain_config({k: s.sample(random_state=rng) for k, s in samplers.items()})
        ModelParams().with_overrides(lightgbm=config)  # validates every sampled value
        for name, value in config.items():
            d = space.lightgbm[name]
            if d.choices is not None:
                assert value in d.choices
            else:
                assert d.low is not None and d.high is not None
                assert d.low <= value <= d.high
                assert isinstance(value, int) == d.integer
