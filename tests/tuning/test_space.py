import json

import pytest
from optuna.distributions import FloatDistribution, IntDistribution

from harness.core.errors import UserError
from methods import METHODS
from tuning.space import params_from, search_space


def test_tru_space_has_one_scale_per_branch():
    tru = METHODS.get("tru")
    space, fixed = search_space(tru, ["id", "image", "text", "fusion"])
    assert set(space) == {"gate_strength", "isolation_coverage", "lr", "max_epochs", "lambda_f", "modality_scales.id",
                          "modality_scales.image", "modality_scales.text", "modality_scales.fusion"}
    assert space["lr"] == FloatDistribution(1e-5, 1e-1, log=True)
    assert isinstance(space["max_epochs"], IntDistribution) and fixed == {}
    config = {"gate_strength": 0.3, "modality_scales.image": 2.0, "modality_scales.text": 0.5, "lr": 0.01}
    params = params_from(config, tru, fixed)
    assert json.loads(params["modality_scales"]) == {"image": 2.0, "text": 0.5}
    tru(**params)  # the method accepts what the space produces


def test_ablations_search_only_what_they_declare():
    space, _ = search_space(METHODS.get("tru-no-gate"), ["id", "image"])
    assert "gate_strength" not in space and "lr" in space


def test_baseline_space_comes_from_declared_ranges():
    space, _ = search_space(METHODS.get("mmrecun"), ["id"])
    assert set(space) == {"lr", "lambda_f", "max_epochs"}  # the family's; no method alone chooses its length


def test_overrides_narrow_fix_and_add():
    tru = METHODS.get("tru")
    space, fixed = search_space(tru, ["id"], {"lr": {"low": 1e-3, "high": 1e-2}, "max_epochs": {"value": 5},
                                              "probe_size": {"choices": [256, 512]}})
    assert space["lr"] == FloatDistribution(1e-3, 1e-2, log=True) and fixed == {"max_epochs": 5}
    assert "max_epochs" not in space and space["probe_size"].choices == (256, 512)


@pytest.mark.parametrize("override, message", [
    ({"speed": {"low": 1, "high": 2}}, "tune.space.speed: not a hyperparameter of 'tru'"),
    ({"lr": {"low": 0.1, "high": 0.01}}, "tune.space.lr: needs low < high"),
    ({"lr": {"step": 2}}, "tune.space.lr: unknown field 'step'"),
    ({"lr": {"value": 9.0}}, "'lr'=9.0 outside"),
])
def test_bad_overrides_are_named(override, message):
    with pytest.raises(UserError, match=message):
        search_space(METHODS.get("tru"), ["id"], override)
