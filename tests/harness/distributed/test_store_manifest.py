"""The store's manifest: a folder knows the experiment and the settings its records were
made with, and refuses a writer with other ones before anything is written."""

import json

import pandas as pd
import pytest

from harness.core.errors import UserError
from harness.distributed.experiment import load_experiment
from harness.distributed.store import MANIFEST, ResultsStore, identity, with_sweep


def made_by(experiment, folder, sweep: str | None = None) -> ResultsStore:
    """A store that ``experiment`` claimed and wrote one record into (``sweep``: a trial of it)."""
    store = ResultsStore(folder)
    manifest = identity(experiment) if sweep is None else with_sweep(identity(experiment), sweep, experiment)
    store.claim(manifest)
    store.append([{"run_key": "k0", "dataset": "tiny", "method": "graph_edit", "seed": experiment.report_seeds[0],
                   "status": "ok", "sweep": sweep, "split": "valid" if sweep else None}])
    return store


def snapshot(folder) -> dict:
    return {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("change, message", [
    ({"training": "{max_epochs = 40, batch_size = 64}"},
     "made with training.max_epochs = 3, this experiment has 40; use another --out"),
    ({"training": "{max_epochs = 3}"},
     "made with training.batch_size = 64, this experiment has none (the default); use another --out"),
    ({"budget": "{epochs = 2}"}, "made with budget.epochs = 10, this experiment has 2"),  # the effective budget
    ({"audit_size": "30"}, "made with audit_size = 2000, this experiment has 30"),
    ({"hparams": "{lightgcn = {dim = 8}}"}, "made with no hparams.lightgcn.dim (the default), this experiment has 8"),
    ({"name": '"other"'}, "made by experiment 'exp', this one is 'other'; use another --out"),
    ({"report_seeds": "[100]", "development_seeds": "[5]"}, "made with seed 100 in development_seeds, this "
                                                            "experiment has it in report_seeds"),
])
def test_other_settings_are_refused_naming_what_differs(experiment_file, tmp_path, change, message):
    store = made_by(load_experiment(experiment_file()), tmp_path / "out")
    before = snapshot(tmp_path / "out")
    other = load_experiment(experiment_file(**change))
    with pytest.raises(UserError) as error:
        store.claim(identity(other))
    assert str(error.value).startswith(f"{tmp_path / 'out'}: ")
    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert snapshot(tmp_path / "out") == before  # nothing written


def test_growth_is_allowed_and_remembered(experiment_file, tmp_path):
    """More methods, regimes, seeds, backbones or another resource setting: the same settings."""
    store = made_by(load_experiment(experiment_file()), tmp_path / "out")
    grown = load_experiment(experiment_file(report_seeds="[0, 1]", development_seeds="[100, 101]",
                                            methods='[{name = "graph_edit"}, {name = "redraw"}]',
                                            resources="{actors_per_model = 2, num_cpus = 1, num_gpus = 0}"))
    store.claim(identity(grown))
    stored = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert stored["report_seeds"] == [0, 1] and stored["development_seeds"] == [100, 101]
    # a seed keeps its role even when the next experiment does not name it
    moved = load_experiment(experiment_file(report_seeds="[0]", development_seeds="[1]"))
    with pytest.raises(UserError, match="made with seed 1 in report_seeds, this experiment has it in development"):
        store.check(identity(moved))


def test_sweeps_may_share_a_folder_but_not_change_settings(experiment_file, tmp_path):
    experiment = load_experiment(experiment_file())
    store = made_by(experiment, tmp_path / "out", sweep="exp-mmrecun")
    store.check(with_sweep(identity(experiment), "exp-tru", experiment))  # another method's sweep joins
    store.check(with_sweep(identity(experiment), "exp-mmrecun", experiment))  # this sweep continues
    changed = load_experiment(experiment_file(tune='{objectives = ["retain_valid_ndcg@20", "abs_privleak"]}'))
    with pytest.raises(UserError, match="sweep 'exp-mmrecun' was made with tune.objectives = "
                                        r'\["retain_valid_ndcg@20", "forget_ks"\], this experiment has '
                                        r'\["retain_valid_ndcg@20", "abs_privleak"\]; use another --out'):
        store.check(with_sweep(identity(changed), "exp-mmrecun", changed))
    store.check(with_sweep(identity(changed), "exp-neggrad", changed))  # a new sweep may search otherwise


def test_a_manifest_binds_only_once_records_exist(experiment_file, tmp_path):
    store = ResultsStore(tmp_path / "out")
    store.claim(identity(load_experiment(experiment_file())))  # a run that stopped before its first record
    store.claim(identity(load_experiment(experiment_file(training="{max_epochs = 40}"))))
    assert json.loads((tmp_path / "out" / MANIFEST).read_text())["training"] == {"max_epochs": 40}


def test_a_store_without_manifest_is_refused(experiment_file, tmp_path):
    """Records whose settings were never recorded cannot be checked, so they are never resumed into."""
    ResultsStore(tmp_path / "out").append([{"run_key": "a", "dataset": "tiny", "status": "ok"}])
    with pytest.raises(UserError, match=f"^{tmp_path / 'out'}: holds records but no {MANIFEST} .*use another --out$"):
        ResultsStore(tmp_path / "out").claim(identity(load_experiment(experiment_file())))
    assert not (tmp_path / "out" / MANIFEST).exists()


def test_a_file_is_not_a_results_folder(tmp_path, experiment_file):
    (tmp_path / "taken").write_text("mine")
    for folder in (tmp_path / "taken", tmp_path / "taken" / "below"):
        with pytest.raises(UserError, match=f"^{tmp_path / 'taken'}: is a file, not a results folder; use another --out$"):
            ResultsStore(folder).claim(identity(load_experiment(experiment_file())))
    assert (tmp_path / "taken").read_text() == "mine"


def test_parquet_files_that_are_not_records_are_named(tmp_path):
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(UserError, match=f"^{tmp_path}: not a results store \\(x.parquet has no column run_key, "
                                        "status, dataset,"):
        ResultsStore(tmp_path).read()
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(UserError, match=f"^{tmp_path}: x.parquet is not a Parquet file"):
        ResultsStore(tmp_path).keys()
