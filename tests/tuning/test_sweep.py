import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from harness.core.errors import UserError
from harness.distributed.experiment import load_experiment
from harness.distributed.store import ResultsStore
from reports.pareto import pareto_mask
from harness.protocol.records import objectives
from tuning.sweep import front_of, nearest_to_retraining, run_sweep, trial_records, trials_of

ONE_CELL = {"regimes": '[{regime = "user", ratio = 0.2}]', "methods": '[{name = "mmrecun"}]',
            "resources": "{actors_per_model = 2, num_cpus = 1, num_gpus = 0}"}


def test_six_trial_two_objective_sweep_and_its_front(ray_local, experiment_file, tmp_path):
    exp = load_experiment(experiment_file(**ONE_CELL, report_seeds="[0, 1]"))
    out = tmp_path / "out"
    summary = run_sweep(exp, "tru", 6, out, progress=False)
    records = trial_records(ResultsStore(out), summary.sweep)
    assert summary.trials == summary.ran == 6 and len(records) == 6 and records["trial_id"].is_unique
    assert set(records["status"]) == {"ok"}
    sampled = [json.loads(c) for c in records["config"]]
    assert all({"gate_strength", "isolation_coverage", "lr", "max_epochs", "lambda_f"} <= set(c) for c in sampled)
    assert all(any(k.startswith("modality_scales.") for k in c) for c in sampled)  # one dimension per branch
    assert len({json.dumps(c, sort_keys=True) for c in sampled}) == 6

    assert set(records["seed"]) == {100}  # trials read the development seed only
    objs = objectives(["retain_valid_ndcg@20", "forget_ks"])
    values = records[["retain_valid_ndcg@20", "forget_ks"]].to_numpy()
    expected = set(records.loc[pareto_mask(values, [True, False]), "trial_id"])
    assert len(expected) >= 1 and set(summary.front["trial_id"]) == expected == set(front_of(records, objs)["trial_id"])

    frame = pd.read_parquet(out)
    retest = frame[(frame["sweep"] == summary.sweep) & (frame["split"] == "test")]
    assert summary.retested == len(retest) == 2 * summary.front["params"].nunique()  # front x report seeds 0, 1
    assert set(retest["params"]) == set(summary.front["params"]) and set(retest["seed"]) == {0, 1}
    # a trial is chosen on validation: its records hold no test figure, its re-test does
    trials = frame[(frame["sweep"] == summary.sweep) & (frame["split"] == "valid")]
    test_fields = [c for c in frame.columns if "test_" in c]
    assert "retain_test_ndcg@20" in test_fields and "retrain_retain_test_ndcg@20" in test_fields
    assert trials[test_fields].isna().all().all()
    assert trials["retain_valid_ndcg@20"].notna().all() and retest["retain_test_ndcg@20"].notna().all()
    assert trials["forget_pairs"].gt(0).all() and json.loads(trials["settings"].iloc[0])["training"]["max_epochs"] == 3
    info = json.loads((out / "_sweeps" / f"{summary.sweep}.json").read_text())
    assert info["trials"] == 6 and info["study"] == f"sqlite:///{out / '_study.db'}"

    import optuna

    study = optuna.load_study(study_name=summary.sweep, storage=f"sqlite:///{out / '_study.db'}")
    assert len(study.directions) == 2  # really multi-objective
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 6
    assert_named_study(study, exp, "tru", records)


def assert_named_study(study, experiment, method, records):
    """The study names its objectives, says what it sweeps, and links each trial to its records."""
    assert study.metric_names == list(experiment.tune.objectives)
    attrs = study.user_attrs
    assert attrs["method"] == method and attrs["dataset"] == "tiny" and attrs["backbone"] == "lightgcn"
    assert attrs["regimes"] == [r.model_dump() for r in experiment.regimes]
    assert [o["name"] for o in attrs["objectives"]] == list(experiment.tune.objectives)
    assert set(attrs["space"]) == set(json.loads(records["config"].iloc[0])) and attrs["sampler"] == experiment.tune.sampler
    linked = {t.user_attrs.get("trial_id") for t in study.trials}
    assert set(records["trial_id"]) <= linked


def test_tuning_a_baseline_works_the_same_way(ray_local, experiment_file, tmp_path):
    exp = load_experiment(experiment_file(**ONE_CELL, tune='{sampler = "nsga2", objectives = ["retain_valid_ndcg@20", "abs_privleak", "unlearn_seconds"]}'))
    summary = run_sweep(exp, "mmrecun", 3, tmp_path / "out", progress=False)
    records = trial_records(ResultsStore(tmp_path / "out"), summary.sweep)
    assert len(records) == 3 and set(records["method"]) == {"mmrecun"}
    assert all(set(json.loads(c)) == {"lr", "lambda_f", "max_epochs"} for c in records["config"])
    assert len(summary.front) >= 1  # a three-objective front, NSGA-II
    from ray._private import state  # the GCS's actor table (the public state API needs the dashboard)

    alive = [a["ActorClassName"] for a in state.actors(actor_state_name="ALIVE").values()]
    assert not {"HostPool", "ModelHost"} & set(alive), alive  # a compare runs ~100 sweeps: none may leave actors
    with pytest.raises(UserError, match="already holds sweep 'exp-mmrecun'; pass --resume"):
        run_sweep(exp, "mmrecun", 3, tmp_path / "out", progress=False)


def test_sweep_configuration_errors(experiment_file, tmp_path):
    exp = load_experiment(experiment_file(backbones='["lightgcn", "mgcn"]'))
    with pytest.raises(UserError, match=r"must name exactly one dataset and backbone \(it names 2 backbones\)"):
        run_sweep(exp, "tru", 3, tmp_path / "a")
    exp = load_experiment(experiment_file(**ONE_CELL))
    with pytest.raises(UserError, match="unknown method"):
        run_sweep(exp, "nope", 3, tmp_path / "b")
    with pytest.raises(UserError, match="tune.objectives: unknown objective 'speed'"):
        load_experiment(experiment_file(**ONE_CELL, tune='{objectives = ["speed"]}'))
    sequence = load_experiment(experiment_file(**ONE_CELL | {"regimes": '[{regime = "user", steps = 3}]'}))
    with pytest.raises(UserError, match=r"tru tune: regimes\[0\] has steps = 3; sweeps tune on single requests"):
        run_sweep(sequence, "tru", 3, tmp_path / "c")
    from tuning.compare import run_compare

    with pytest.raises(UserError, match=r"tru compare: regimes\[0\] has steps = 3"):
        run_compare(sequence, 3, tmp_path / "d")
    assert not any((tmp_path / name).exists() for name in "abcd")


def test_resume_after_the_driver_is_killed_runs_exactly_n_trials(experiment_file, tmp_path):
    path = experiment_file(**(ONE_CELL | {"resources": "{actors_per_model = 1, num_cpus = 1, num_gpus = 0}"}))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "harness.cli", "tune", str(path), "--method", "mmrecun", "--trials", "6",
               "--out", str(out), "--quiet"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 180
    while len(ResultsStore(out).files()) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = len(trial_records(ResultsStore(out), "exp-mmrecun"))
    assert 2 <= kept < 6
    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # stdout holds only the promised lines; Tune's box and hint and Ray's lines go to the run log
    lines = resumed.stdout.splitlines()
    assert lines[0].startswith("sweep exp-mmrecun: 6 trials stored (") and "validation Pareto front: " in lines[0]
    assert all(line.startswith("  trial ") for line in lines[1:-2]) and len(lines) >= 4
    assert lines[-2].startswith(f"results: {out}") and lines[-1] == f"report: {out / '_report.html'}"
    log = (out / "_logs" / "run.log").read_text()
    assert "stdout: " in log and "Configuration for experiment" in log and "Configuration for" not in resumed.stdout
    records = trial_records(ResultsStore(out), "exp-mmrecun")
    assert len(records) == 6 and records["trial_id"].is_unique
    assert records["config"].nunique() == 6  # no configuration repeated
    import optuna

    study = optuna.load_study(study_name="exp-mmrecun", storage=f"sqlite:///{out / '_study.db'}")
    assert_named_study(study, load_experiment(path), "mmrecun", records)  # trials told on resume are linked too


def test_a_trial_averages_its_development_seeds_and_regimes(ray_local, experiment_file, tmp_path):
    """Two development seeds x two regimes: four records per trial, its objectives their means."""
    exp = load_experiment(experiment_file(methods='[{name = "mmrecun"}]', development_seeds="[100, 101]",
                                          resources="{actors_per_model = 1, num_cpus = 1, num_gpus = 0}"))
    out = tmp_path / "out"
    summary = run_sweep(exp, "mmrecun", 2, out, progress=False, retest=False)
    records = trial_records(ResultsStore(out), summary.sweep)
    assert summary.trials == 2 and len(records) == 8
    assert set(map(tuple, records[["seed", "regime"]].drop_duplicates().to_numpy().tolist())) == {
        (100, "interaction"), (100, "user"), (101, "interaction"), (101, "user")}
    objs = objectives(["retain_valid_ndcg@20", "forget_ks"])
    trials = trials_of(records, objs)
    for row in trials.to_dict("records"):
        mine = records[records["trial_id"] == row["trial_id"]]
        assert row["tasks"] == 4 and row["forget_ks"] == pytest.approx(mine["forget_ks"].mean())


def test_nearest_to_retraining_hand_computed():
    objs = objectives(["retain_valid_ndcg@20", "forget_ks"])
    front = pd.DataFrame({"retain_valid_ndcg@20": [0.20, 0.18, 0.10], "retain_valid_ndcg@20_target": [0.2] * 3,
                          "forget_ks": [0.5, 0.1, 0.0], "forget_ks_target": [0.0] * 3, "params": ["a", "b", "c"]})
    # distances: a (0)^2 + 0.5^2 = 0.25; b (0.1)^2 + 0.1^2 = 0.02; c (0.5)^2 + 0 = 0.25
    assert nearest_to_retraining(front, objs)["params"] == "b"
    above = front.assign(**{"retain_valid_ndcg@20": [0.25, 0.18, 0.10]})  # beating the retrain's NDCG costs nothing
    assert nearest_to_retraining(above, objs)["params"] == "b"


def test_a_configuration_missing_an_objective_is_never_nearest():
    objs = objectives(["retain_valid_ndcg@20", "forget_ks"])
    front = pd.DataFrame({"retain_valid_ndcg@20": [0.20, 0.18], "retain_valid_ndcg@20_target": [0.2] * 2,
                          "forget_ks": [float("nan"), 0.1], "forget_ks_target": [0.0] * 2, "params": ["a", "b"]})
    assert nearest_to_retraining(front, objs)["params"] == "b"  # np.argmin would pick the NaN row "a"
    assert nearest_to_retraining(front.iloc[:1], objs) is None
    assert nearest_to_retraining(pd.DataFrame(), objs) is None  # a sweep with no trial yet


def test_a_front_configuration_of_an_ablation_re_runs_as_recorded():
    import json

    from methods import METHODS
    from tuning.sweep import retest_specs

    recorded = json.dumps(METHODS.get("tru-no-gate")(lr=0.02).params, sort_keys=True)  # holds the fixed gate_strength
    (spec,) = retest_specs("tru-no-gate", [recorded])
    rebuilt = METHODS.get("tru-no-gate")(**spec.params)  # the recorded params themselves would be refused
    assert json.dumps(rebuilt.params, sort_keys=True) == recorded  # so the re-test record matches its trials' params
