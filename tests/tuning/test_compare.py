import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from harness.distributed.experiment import load_experiment
from harness.distributed.store import ResultsStore
from harness.protocol.records import objectives
from tuning.compare import _best, choose, tuned
from tuning.sweep import front_of, trial_records
from harness.distributed.experiment import MethodSpec

CELL = {"regimes": '[{regime = "user", ratio = 0.2}]', "report_seeds": "[0, 1]", "development_seeds": "[100]",
        "methods": '[{name = "graph_edit"}, {name = "mmrecun"}]',
        "resources": "{actors_per_model = 1, num_cpus = 1, num_gpus = 0}"}


def test_a_killed_compare_resumes_with_every_trial_and_report_record_once(experiment_file, tmp_path):
    path = experiment_file(**CELL)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "harness.cli", "compare", str(path), "--trials", "4", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 240
    store = ResultsStore(out)
    while len(store.files()) < 3:  # graph_edit's two report records, then a trial
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "| mmrecun | 2 |" in resumed.stdout and "retrain2 (noise floor)" in resumed.stdout

    frame = store.read()
    assert frame["run_key"].is_unique and set(frame["status"]) == {"ok"}
    experiment = load_experiment(path)
    sweep = f"{experiment.name}-tiny-lightgcn-user-random-0.2-mmrecun"
    trials = trial_records(store, sweep)
    assert len(trials) == 4 and trials["trial_id"].is_unique and trials["config"].nunique() == 4
    assert set(trials["seed"]) == {100}  # tuning read the development seed only
    front = front_of(trials, objectives(experiment.tune.objectives))
    report = frame[frame["split"] == "test"]
    assert set(report["seed"]) == {0, 1}
    tuned_report = report[report["sweep"] == sweep]
    assert len(tuned_report) == 2 * front["params"].nunique()  # every front configuration x report seeds, once
    assert len(report[report["method"] == "graph_edit"]) == 2  # untuned: once per report seed
    chosen = choose(experiment, frame)
    assert set(chosen["method"]) == {"graph_edit", "mmrecun"} and chosen["params"].notna().all()
    assert (out / "_compare.md").read_text().count("| graph_edit vs mmrecun |") == 1


def test_tuned_means_something_left_to_search():
    assert tuned(MethodSpec(name="mmrecun")) and not tuned(MethodSpec(name="graph_edit"))
    assert not tuned(MethodSpec(name="finetune", params={"lr": 1e-3, "max_epochs": 5}))  # all it searches fixed


def _stats(mean, half, n=3):
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}


def test_best_needs_an_interval_clear_of_every_other():
    methods = ["a", "b", "c"]
    clear = {"a": _stats(0.30, 0.01), "b": _stats(0.20, 0.02), "c": _stats(0.10, 0.05)}
    assert _best(clear, "max", methods) == {"a"}
    assert _best(clear, "min", methods) == {"c"}  # the other direction picks the other end
    overlap = clear | {"b": _stats(0.28, 0.02)}
    assert _best(overlap, "max", methods) == set()
    near_zero = {"a": _stats(0.01, 0.02), "b": _stats(-0.30, 0.05), "c": _stats(0.40, 0.05)}
    assert _best(near_zero, "abs", methods) == {"a"}  # PrivLeak: nearer 0 on either side
    assert _best(near_zero, "min", methods) == {"b"}
    assert _best(clear | {"a": _stats(0.3, 0.0, n=1)}, "max", methods) == set()  # one seed claims nothing


def test_tables_show_the_searched_hyperparameters_only():
    from tuning.compare import _searched_params

    assert _searched_params("finetune", '{"lr": 0.0123456, "max_epochs": 3}') == '{"lr": 0.0123, "max_epochs": 3}'
    shown = _searched_params("tru", '{"probe_size": 512, "modality_scales": "{\\"id\\": 0.123456}", "lr": 0.01}')
    assert shown == '{"lr": 0.01, "modality_scales": {"id": 0.123}}'  # probe_size is not searched


def test_an_interrupted_run_stops_the_whole_compare_with_exit_130(experiment_file, tmp_path, monkeypatch, capsys):
    """Ctrl-C inside one method's run ends the comparison (no next method, no tables), one line, exit 130."""
    import contextlib

    import tuning.compare as compare
    from harness.cli import main
    from harness.distributed.runner import RunSummary

    calls = []

    def interrupted_run(experiment, out, **kwargs):
        calls.append(experiment.methods[0].name)
        return RunSummary(out, total=2, skipped=0, done=1, interrupted=True)

    monkeypatch.setattr(compare, "run_experiment", interrupted_run)
    monkeypatch.setattr(compare, "ray_session", lambda *a, **k: contextlib.nullcontext())
    path = experiment_file(**(CELL | {"methods": '[{name = "graph_edit"}, {name = "redraw"}]'}))
    assert main(["compare", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 130
    captured = capsys.readouterr()
    assert calls == ["graph_edit"]  # redraw never started
    assert captured.err.strip() == (f"tru: interrupted: 1 new records of graph_edit kept in {tmp_path / 'out'}; "
                                    "run again with --resume")
    assert captured.out == "" and not (tmp_path / "out" / "_compare.md").exists()


def test_a_sweep_cut_short_is_interrupted_not_retested(tmp_path):
    """Tune returns early on Ctrl-C; fewer stored trials than asked raise, naming the count."""
    from types import SimpleNamespace

    import pytest

    from harness.core.errors import Interrupted
    from tuning.sweep import _check_complete

    store = ResultsStore(tmp_path)
    store.append([{"run_key": f"k{i}", "sweep": "s", "split": "valid", "trial_id": f"t{i // 2}", "status": "ok"}
                  for i in range(4)])  # 2 trials x 2 tasks
    sweep = SimpleNamespace(store=store, name="s", trials=3, out=tmp_path)
    with pytest.raises(Interrupted, match=r"^sweep s: 2 of 3 trials stored in .*; run again with --resume$"):
        _check_complete(sweep, SimpleNamespace(errors=[]))
    with pytest.raises(Interrupted, match=r"; 1 trials failed \(see .*run.log\); run again"):
        _check_complete(sweep, SimpleNamespace(errors=[RuntimeError()]))
    _check_complete(SimpleNamespace(store=store, name="s", trials=2, out=tmp_path), SimpleNamespace(errors=[]))


def test_cell_rows_take_each_seeds_newest_record():
    """After a code edit, --resume re-runs a re-test and keeps the old record: the tables read the new one."""
    from tuning.compare import _cell_rows

    def record(seed, finished, ndcg, retrain_ndcg):
        return {"sweep": "s", "split": "test", "params": "{}", "status": "ok", "seed": seed, "finished_at": finished,
                "retain_test_ndcg@20": ndcg, "retrain_retain_test_ndcg@20": retrain_ndcg}

    records = pd.DataFrame([record(0, "2026-12-01T09:00", 0.1, 0.3), record(0, "2026-12-03T09:00", 0.2, 0.4),
                            record(1, "2026-12-01T09:00", 0.5, 0.6)])
    chosen = pd.DataFrame([{"method": "m", "sweep": "s", "params": "{}"}])
    rows = _cell_rows(records, chosen)
    mine = rows["m"].set_index("seed")["retain_test_ndcg@20"].to_dict()
    assert mine == {0: 0.2, 1: 0.5}  # the oldest-first order would give 0.1 for seed 0
    retrain = rows["retrain (reference)"].set_index("seed")["retain_test_ndcg@20"].to_dict()
    assert retrain == {0: 0.4, 1: 0.6}  # the references come from the same newest records


def _report_records():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("reports_conftest", Path(__file__).parents[1] / "reports" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.rec


def test_one_regime_at_two_ratios_gets_two_sections(experiment_file):
    from tuning.compare import compare_markdown

    rec = _report_records()
    experiment = load_experiment(experiment_file(
        regimes='[{regime = "user", ratio = 0.05}, {regime = "user", ratio = 0.2}]', report_seeds="[0, 1]"))
    chosen, records = [], []
    for ratio, ndcg in ((0.05, 0.14), (0.2, 0.10)):
        for method in ("graph_edit", "mmrecun"):
            sweep = f"s-{ratio}-{method}"
            chosen.append({"dataset": "tiny", "backbone": "lightgcn", "regime": "user", "selection": "random",
                           "ratio": ratio, "method": method, "sweep": sweep, "params": "{}", "front": 1})
            records += [rec(method, seed, ndcg, sweep=sweep, split="test", ratio=ratio) for seed in (0, 1)]
    text = compare_markdown(experiment, pd.DataFrame(records), pd.DataFrame(chosen), 4)
    assert "## tiny / lightgcn / user (random 0.05)" in text and "## tiny / lightgcn / user (random 0.2)" in text
    first, second = text.split("(random 0.2)")
    assert "| graph_edit | 2 | 0.140" in first and "| graph_edit | 2 | 0.100" in second  # never mixed


def test_the_best_baseline_is_the_one_nearest_retraining_on_validation_objectives():
    from harness.protocol.records import objectives as objectives_of
    from tuning.compare import best_baseline

    def rows(valid, ks):  # two report seeds; the retrained model's validation N@20 is 0.125
        return pd.DataFrame([{"seed": s, "retain_valid_ndcg@20": valid, "retrain_retain_valid_ndcg@20": 0.125,
                              "forget_ks": ks, "retain_test_ndcg@20": 0.5} for s in (0, 1)])

    objs = objectives_of(["retain_valid_ndcg@20", "forget_ks"])
    cell = {"graph_edit": rows(0.124, 0.085), "neggrad_plus": rows(0.119, 0.027), "finetune": rows(0.120, 0.060)}
    # (shortfall / 0.125)^2 + ks^2: graph_edit 0.00006 + 0.00723, neggrad_plus 0.0023 + 0.00073, finetune 0.0016 + 0.0036
    assert best_baseline(cell, list(cell), objs) == "neggrad_plus"
    assert best_baseline(cell, ["graph_edit", "finetune"], objs) == "finetune"
    assert best_baseline(cell, [], objs) is None


def test_a_method_failing_on_every_report_seed_is_named_with_its_error(experiment_file):
    from tuning.compare import compare_markdown

    rec = _report_records()
    experiment = load_experiment(experiment_file(regimes='[{regime = "user", ratio = 0.2}]', report_seeds="[0, 1]"))
    chosen = pd.DataFrame([{"dataset": "tiny", "backbone": "lightgcn", "regime": "user", "selection": "random",
                            "ratio": 0.2, "method": m, "sweep": f"s-{m}", "params": "{}", "front": 1}
                           for m in ("graph_edit", "mmrecun")])
    records = [rec("graph_edit", s, sweep="s-graph_edit", split="test") for s in (0, 1)]
    records += [rec("mmrecun", s, sweep="s-mmrecun", split="test", status="error", error="UserError: boom") for s in (0, 1)]
    text = compare_markdown(experiment, pd.DataFrame(records), chosen, 4)
    assert "failed on every report seed: mmrecun (UserError: boom)" in text and "no report records yet" not in text


def test_the_speed_up_is_the_geometric_mean_of_the_per_seed_ratios():
    import math

    import pytest

    from reports.statistics import interval
    from tuning.compare import _derived

    frame = _derived(pd.DataFrame({"speedup": [10.0, 1000.0, 0.0], "privleak": [-0.2, 0.1, 0.0]}))
    assert math.exp(interval(frame["log_speedup"])["mean"]) == pytest.approx(100.0)  # the arithmetic mean says 505
    assert frame["abs_privleak"].tolist() == [0.2, 0.1, 0.0]
    assert math.isnan(frame["log_speedup"].iloc[2])  # no positive speed-up: no ratio, not log 0 = -inf


def test_one_method_listed_twice_gives_two_rows_with_their_own_params(experiment_file, tmp_path):
    import json

    from methods import METHODS
    from tests.reports.conftest import rec
    from tuning.compare import cell_experiment, compare_markdown, spec_labels
    from tuning.sweep import sweep_name

    methods = '[{name = "graph_edit"}, {name = "sisa", params = {n_shards = 2}}, {name = "sisa", params = {n_shards = 3}}]'
    experiment = load_experiment(experiment_file(**CELL | {"methods": methods}))
    assert spec_labels(experiment.method_specs()) == ["graph_edit", "sisa (n_shards=2)", "sisa (n_shards=3)"]
    cell = cell_experiment(experiment, experiment.datasets[0], "lightgcn", experiment.regimes[0])
    store = ResultsStore(tmp_path / "out")
    records = []
    for spec in experiment.method_specs():
        params = json.dumps(METHODS.get(spec.name)(**spec.params).params, sort_keys=True)
        own = 0.10 + 0.01 * spec.params.get("n_shards", 0) if spec.name == "sisa" else None
        for seed in (0, 1):
            records.append(rec(spec.name, seed, 0.12, 0.2, params=params, sweep=sweep_name(cell, spec.name), split="test",
                               **{"own_original_retain_test_ndcg@20": own, "train_seconds_total": 5.0,
                                  "decisions": json.dumps({"workers": 2})}))
    store.append(records)
    chosen = choose(experiment, store.read()).set_index("method")
    assert json.loads(chosen.loc["sisa (n_shards=2)", "params"])["n_shards"] == 2  # each its own configuration
    assert json.loads(chosen.loc["sisa (n_shards=3)", "params"])["n_shards"] == 3
    text = compare_markdown(experiment, store.read(), chosen.reset_index(), 1)
    assert "| sisa (n_shards=2) | 2 |" in text and "| sisa (n_shards=3) | 2 |" in text
    own = text.split("Own originals")[1].split("Paired wins")[0]  # the sharded models beside the shared original
    assert "| sisa (n_shards=2) | 0.120 ±0.000 [0.120, 0.120] |" in own and "| 2 |" in own and "graph_edit" not in own
    assert "| sisa (n_shards=3) | 0.130" in own


def test_ray_data_computes_the_compare_tables_exactly_as_pandas(ray_local, experiment_file):
    """Two cells, TRU against two baselines over 3 seeds, one field missing for one method:
    the same _compare.md, verdict included, whichever engine computes the intervals."""
    from tuning.compare import cell_intervals, compare_markdown

    rec = _report_records()
    experiment = load_experiment(experiment_file(
        regimes='[{regime = "user", ratio = 0.05}, {regime = "user", ratio = 0.2}]', report_seeds="[0, 1, 2]",
        methods='[{name = "graph_edit"}, {name = "mmrecun"}, {name = "tru"}]'))
    chosen, records = [], []
    for ratio in (0.05, 0.2):
        for method, ndcg, ks in (("graph_edit", 0.14, 0.30), ("mmrecun", 0.12, 0.2), ("tru", 0.13, 0.1)):
            sweep = f"s-{ratio}-{method}"
            chosen.append({"dataset": "tiny", "backbone": "lightgcn", "regime": "user", "selection": "random",
                           "ratio": ratio, "method": method, "sweep": sweep, "params": "{}", "front": 1})
            extra = {} if method == "tru" else {"fairness_gap@20": 0.01 * ratio}
            records += [rec(method, seed, ndcg + 0.003 * seed * ratio, ks - 0.01 * seed, sweep=sweep, split="test",
                            ratio=ratio, speedup=10.0 ** (seed + 1), **extra) for seed in (0, 1, 2)]
    records, chosen = pd.DataFrame(records), pd.DataFrame(chosen)
    by_pandas = compare_markdown(experiment, records, chosen, 4)
    by_ray = compare_markdown(experiment, records, chosen, 4, "ray")
    assert by_pandas == by_ray
    cells = [{"a": pd.DataFrame({"seed": [0, 1, 2], "forget_ks": [1e-8, 0.5, 1e8], "privleak": [None, None, None]}),
              "b": pd.DataFrame({"seed": [0], "speedup": [3]}), "empty": pd.DataFrame({"seed": []})}, {}]
    exact = pd.DataFrame([{"cell": i, "name": n, "field": f} | v for i, c in enumerate(cell_intervals(cells))
                          for n, fields in c.items() for f, v in fields.items()])
    by_tasks = pd.DataFrame([{"cell": i, "name": n, "field": f} | v for i, c in enumerate(cell_intervals(cells, "ray"))
                             for n, fields in c.items() for f, v in fields.items()])
    pd.testing.assert_frame_equal(exact, by_tasks, check_exact=True)  # unrounded, NaN where NaN
    assert "## TRU against" in by_pandas and "| tru | 3 |" in by_pandas
    rows = {"tru": pd.DataFrame({"seed": [0, 1, 2], "forget_ks": [0.1, 0.2, 0.3]})}
    (mine,) = cell_intervals([rows], "ray")
    assert mine["tru"]["forget_ks"]["mean"] == pytest.approx(0.2) and mine["tru"]["forget_ks"]["n"] == 3
    assert mine["tru"]["forget_ks"]["high"] == pytest.approx(0.2 + 4.302653 * 0.1 / 3 ** 0.5, rel=1e-6)
    assert mine["tru"]["privleak"]["n"] == 0  # a field the rows lack: no interval, not an error
