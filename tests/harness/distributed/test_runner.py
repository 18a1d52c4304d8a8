import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.core.errors import UserError
from harness.distributed.experiment import expand, load_experiment
from harness.distributed.runner import run_experiment
from harness.distributed.store import MANIFEST, ResultsStore

FAULTS = '[{name = "graph_edit"}, {name = "fault-raise"}, {name = "fault-crash-once", params = {marker = "MARKER"}}]'


def test_run_then_resume_skips_exactly_what_is_stored(ray_local, experiment_file, tmp_path):
    exp = load_experiment(experiment_file(resources="{actors_per_model = 2, num_cpus = 1, num_gpus = 0}"))
    out = tmp_path / "out"
    summary = run_experiment(exp, out, progress=False)
    assert (summary.total, summary.done, summary.errors, summary.skipped) == (4, 4, 0, 0)
    frame = pd.read_parquet(out)
    assert sorted(frame["run_key"]) == sorted(j.run_key for j in expand(exp))
    assert set(frame["status"]) == {"ok"} and set(frame["experiment"]) == {"exp"}
    assert (out / "_logs" / "run.log").read_text().count(": ok") == 4
    manifest = json.loads((out / MANIFEST).read_text())  # the folder knows its experiment and settings
    assert manifest["experiment"] == "exp" and manifest["training"] == {"max_epochs": 3, "batch_size": 64}

    with pytest.raises(UserError, match="already holds results; pass --resume"):
        run_experiment(exp, out, progress=False)
    assert run_experiment(exp, out, resume=True, progress=False).done == 0  # nothing left to do

    lost = Path(ResultsStore(out).files()[1])
    lost_key = pd.read_parquet(lost)["run_key"].item()
    lost.unlink()
    summary = run_experiment(exp, out, resume=True, progress=False)
    assert (summary.done, summary.skipped) == (1, 3)
    frame = pd.read_parquet(out)
    assert len(frame) == 4 and frame["run_key"].is_unique and lost_key in set(frame["run_key"])


def test_a_raising_job_is_stored_as_an_error_and_a_killed_actor_is_restarted(ray_local, experiment_file, tmp_path):
    marker = tmp_path / "crashed"
    exp = load_experiment(experiment_file(methods=FAULTS.replace("MARKER", str(marker)),
                                          regimes='[{regime = "interaction", ratio = 0.2}]'))
    out = tmp_path / "out"
    summary = run_experiment(exp, out, progress=False)
    frame = pd.read_parquet(out).set_index("method")
    assert summary.done == 3 and summary.errors == 1 and len(frame) == 3
    assert frame.loc["fault-raise", "status"] == "error"
    assert frame.loc["fault-raise", "error"] == "RuntimeError: fault-raise: raised on purpose"
    assert marker.exists()  # the actor really died once
    crashed = frame.loc["fault-crash-once"]
    assert crashed["status"] == "ok" and bool(crashed["restarted"])  # retried on the restarted actor, stored once
    assert frame.loc["graph_edit", "status"] == "ok"


def _cli_run(path: Path, out: Path, *extra: str) -> subprocess.Popen:
    """``tru run`` in its own session, with Ctrl-C's default action even when the tests
    themselves run where SIGINT is ignored (a background job of a script inherits that)."""
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(path), "--out", str(out), "--quiet", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_records(out: Path, proc: subprocess.Popen, at_least: int, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while len(ResultsStore(out).files()) < at_least:
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no record appeared in time"
        time.sleep(0.2)


def test_driver_killed_then_resume_loses_and_duplicates_nothing(experiment_file, tmp_path):
    path = experiment_file(methods='[{name = "graph_edit"}, {name = "fault-sleep", params = {seconds = 1.5}}]',
                           report_seeds="[0, 1]")
    out = tmp_path / "out"
    jobs = expand(load_experiment(path))
    proc = _cli_run(path, out)
    _wait_for_records(out, proc, at_least=1)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything in its session
    proc.wait()
    kept = ResultsStore(out).keys()
    assert 1 <= len(kept) < len(jobs)
    resumed = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(path), "--out", str(out), "--resume",
                              "--quiet"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(kept)} already stored, {len(jobs) - len(kept)} run" in resumed.stdout
    frame = pd.read_parquet(out)
    assert sorted(frame["run_key"]) == sorted(j.run_key for j in jobs)  # none lost, none twice


def test_ctrl_c_stops_cleanly_and_keeps_finished_records(experiment_file, tmp_path):
    # each host runs graph_edit first, then a job sleeping far longer than the test waits
    path = experiment_file(methods='[{name = "graph_edit"}, {name = "fault-sleep", params = {seconds = 60.0}}]',
                           report_seeds="[0, 1]")
    out = tmp_path / "out"
    proc = _cli_run(path, out)
    _wait_for_records(out, proc, at_least=1)
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=50)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the run went on after SIGINT")
    stored = pd.read_parquet(out)[["method", "status", "error"]].to_dict("records")
    assert proc.returncode == 130, (stderr[-2000:], stored)
    assert "interrupted:" in stderr and "--resume" in stderr
    kept = ResultsStore(out).keys()
    assert len(kept) >= 1 and len(pd.read_parquet(out)) == len(kept)


def test_the_harness_never_writes_device_variables():
    root = Path(__file__).resolve().parents[3]
    for package in ("harness", "methods", "backbones", "tuning", "reports"):
        for source in (root / package).rglob("*.py"):
            assert "CUDA_VISIBLE_DEVICES" not in source.read_text(), source


def _retrain_set_key(exp, regime, method_params):
    """The key of the shard set a partitioned job retrains for ``regime`` (as its plan names it)."""
    import torch

    from harness.data.datasets import load_dataset
    from harness.data.regimes import make_task
    from harness.protocol.shards import ShardTrainer
    from methods import METHODS, Budget

    dataset = load_dataset(exp.datasets[0])
    task = make_task(dataset, regime.regime, regime.selection, regime.ratio, exp.report_seeds[0])
    _, retrain = METHODS.get("sisa")(**method_params).plan(None, task, Budget(seed=exp.report_seeds[0]))
    return ShardTrainer(dataset, "lightgcn", {}, exp.training, torch.device("cpu"), None).key(retrain), len(retrain)


@pytest.mark.parametrize("actors", [2, 3])  # 3 actors of 1 CPU on 2 CPUs: one never starts, the sets go on without it
def test_a_partitioned_methods_shards_train_across_the_models_actors(ray_local, experiment_file, tmp_path, actors,
                                                                     monkeypatch):
    import harness.distributed.runner as runner
    from harness.protocol.shards import read_record

    monkeypatch.setattr(runner, "START_GRACE", 1.0)
    exp = load_experiment(experiment_file(methods='[{name = "sisa", params = {n_shards = 3}}, {name = "graph_edit"}]',
                                          resources=f"{{actors_per_model = {actors}, num_cpus = 1, num_gpus = 0}}"))
    out = tmp_path / "out"
    summary = run_experiment(exp, out, progress=False)
    assert (summary.done, summary.errors) == (4, 0)
    frame = pd.read_parquet(out)
    for regime in exp.regimes:
        key, shards = _retrain_set_key(exp, regime, {"n_shards": 3})
        measured = read_record(exp.cache_dir, key)  # trained ahead across the model's live actors
        assert measured["workers"] == 2 and measured["how"] == "measured" and len(measured["train_seconds"]) == shards
        record = frame[(frame["method"] == "sisa") & (frame["regime"] == regime.regime)].iloc[0]
        assert record["unlearn_seconds"] == measured["wall_seconds"]  # that set's wall time, not a reload or the original's
        assert json.loads(record["decisions"])["workers"] == 2
        assert record["train_seconds_total"] == pytest.approx(sum(measured["train_seconds"]))
        assert record["own_original_retain_test_ndcg@20"] > 0


def test_a_sequence_of_requests_stores_one_record_per_step_and_resumes(ray_local, experiment_file, tmp_path):
    exp = load_experiment(experiment_file(methods='[{name = "retrain"}, {name = "mmrecun"}]',
                                          regimes='[{regime = "user", ratio = 0.05, steps = 3}]',
                                          resources="{actors_per_model = 2, num_cpus = 1, num_gpus = 0}"))
    out = tmp_path / "out"
    summary = run_experiment(exp, out, progress=False)
    assert (summary.total, summary.done, summary.errors) == (2, 2, 0)
    frame = pd.read_parquet(out)
    assert len(frame) == 6 and frame["run_key"].is_unique
    for method, records in frame.groupby("method"):
        assert sorted(records["step"]) == [1, 2, 3]
        assert records.sort_values("step")["forget_pairs"].is_monotonic_increasing  # every pair deleted so far
    assert (frame.loc[frame["method"] == "retrain", "forget_ks"] == 0.0).all()  # step t against its own retrain
    assert run_experiment(exp, out, resume=True, progress=False).done == 0


def test_a_failing_shard_leaves_its_set_to_the_job(ray_local, tmp_path):
    import numpy as np

    from harness.distributed.shards import train_set, train_sets
    from harness.protocol.shards import read_record
    from methods import ShardJob

    @ray_local.remote(num_cpus=0)
    class Trainer:  # a ModelHost's shard methods, on the cache folder tmp_path
        def train_shard(self, job):
            if job.seed == 2:
                raise RuntimeError("no validation pairs")
            return {"train_seconds": 1.0, "cached": False}

        def shard_record(self, key):
            return read_record(tmp_path, key)

        def write_shard_record(self, key, *measured):
            from harness.protocol.shards import write_record

            write_record(tmp_path, key, *measured)

    jobs = [ShardJob(np.zeros((1, 2), dtype=np.int64), np.zeros((0, 2), dtype=np.int64), s) for s in (1, 2, 3)]
    actor = Trainer.remote()
    assert train_set([actor], jobs) is None  # no measurement: the job trains the set itself (or records the error)
    train_sets([actor], [("k", jobs)])
    assert read_record(tmp_path, "k") is None
    assert train_set([actor], [jobs[0], jobs[2]])[0] == [1.0, 1.0]
    train_sets([actor], [("ok", [jobs[0], jobs[2]])])  # a set that trains: the actor writes its record
    assert read_record(tmp_path, "ok")["how"] == "measured" and read_record(tmp_path, "ok")["workers"] == 1


@pytest.mark.cluster  # a store on a URI is the cluster's: make test-cluster
def test_a_run_into_a_uri_stores_its_records_there_resumes_and_reports(ray_local, experiment_file, tmp_path,
                                                                      monkeypatch):
    """``memory://`` (fsspec) takes an object store's path: files written once under their
    final names, no rename; the run's log and the report are copied there at the end."""
    import harness.distributed.store as store_module
    from harness.distributed.store import local_folder
    from reports.page import write_report

    monkeypatch.setattr(store_module, "RUNS_CACHE", tmp_path / "runs-cache")
    uri = f"memory://tru-test-run-{os.getpid()}/runs/exp"
    exp = load_experiment(experiment_file(regimes='[{regime = "interaction", ratio = 0.2}]'))
    summary = run_experiment(exp, uri, progress=False)
    store = ResultsStore(uri)
    frame = store.read("pandas")
    assert summary.done == 2 and sorted(frame["status"]) == ["ok", "ok"] and frame["run_key"].is_unique
    assert store.manifest()["experiment"] == "exp"
    assert run_experiment(exp, uri, resume=True, progress=False).done == 0  # resumed from the URI's keys
    with pytest.raises(UserError, match="already holds results"):
        run_experiment(exp, uri, progress=False)
    local = local_folder(uri)
    assert (local / "_logs" / "run.log").is_file()
    with store.fs.open_input_stream(store._path("_logs/run.log")) as handle:
        assert b"run ended" in handle.read()
    # memory:// lives in this process only, out of Ray Data's workers' reach (tests/reports/test_page.py
    # reads a file:// store through Ray Data)
    monkeypatch.setattr(ResultsStore, "uses_ray_data", lambda self: False)
    report = write_report(uri)  # default: the local folder's _report.html, and a copy on the URI
    assert report == local / "_report.html" and report.is_file()
    with store.fs.open_input_stream(store._path("_report.html")) as handle:
        assert handle.read() == report.read_bytes()
