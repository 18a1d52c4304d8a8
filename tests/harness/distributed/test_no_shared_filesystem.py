"""A two-node Ray cluster on one machine whose worker node cannot read the driver's folders.

The worker node runs in its own mount namespace (``unshare -m``) with an empty tmpfs
mounted over the driver's private folder, which holds the dataset (a copy), a plugin
method module and the run folder; over the project's package folders
(so it runs the code ``ray.ship_code`` sends); and over the head's unpacked runtime
environments (so it fetches the shipped modules from Ray itself). The head node has no
CPUs, so every model host runs on the worker. A run (the plugin method, a partitioned
method and a built-in) and a 4-trial sweep of the plugin method must finish there with
the same records as on a single-node Ray that reads everything, each record stored once.
The model cache is a ``file://`` URI outside the private folder (a shared mount, as a
cluster's bucket would be): it must end up holding the single-node run's models.

It takes about 4 minutes, so it is marked ``cluster``: ``make test`` leaves it out and
``make test-cluster`` (run by ``.ci/run`` after ``make test``) runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.distributed.experiment import load_experiment
from harness.distributed.runner import run_experiment
from harness.distributed.store import ResultsStore

PLUGIN = "tru_private_plugin"
PLUGIN_SOURCE = '''
"""A plugin method that exists only in the driver's private folder."""
from methods.base import METHODS
from methods.reverse import NegGrad


@METHODS.register("private-neggrad")
class PrivateNegGrad(NegGrad):
    """NegGrad under another name: its module must reach the workers through runtime_env."""
'''
#: what differs between two runs of the same job by construction (where and when it ran)
CIRCUMSTANCES = {"node", "started_at", "finished_at", "audit_seconds", "measure_seconds", "unlearn_seconds",
                 "retrain_seconds", "speedup", "train_seconds_total"}
#: a sweep's run keys hash its Tune trial ids, so its records are matched by what they measured
TRIAL_IDS = {"run_key", "trial_id"}
ORDER = ["sweep", "split", "config", "seed", "regime", "method", "params"]


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True).returncode == 0


def _package_folders() -> list[Path]:
    """Where this process, and an editable install of the project, find its packages."""
    import importlib
    import importlib.util
    import sysconfig

    from harness.distributed.cluster import PACKAGES

    folders = {Path(importlib.import_module(p).__file__).parent for p in PACKAGES}
    for finder in Path(sysconfig.get_paths()["purelib"]).glob("__editable___tru_harness*_finder.py"):
        spec = importlib.util.spec_from_file_location("_tru_editable_finder", finder)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        folders |= {Path(p) for p in module.MAPPING.values()}
    return sorted(folders)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process: subprocess.Popen, marker: str) -> None:
    """Stop a ``ray start --block`` and everything it started (its process group, then any
    process naming this cluster's temp folder; never another Ray on the machine)."""
    import psutil

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=15)
            break
        except subprocess.TimeoutExpired:
            continue
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in proc.info["cmdline"] or []):
                proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue


def _experiment_text(private: Path, data: Path, cache: str) -> str:
    return textwrap.dedent(f"""
        name = "hidden"
        datasets = ["{data}"]
        backbones = ["lightgcn"]
        report_seeds = [0]
        development_seeds = [100]
        plugins = ["{PLUGIN}"]
        methods = [{{name = "private-neggrad", params = {{lr = 0.01}}}}, {{name = "graph_edit"}},
                   {{name = "sisa", params = {{n_shards = 2}}}}]
        cache_dir = "{cache}"
        regimes = [{{regime = "interaction", ratio = 0.2}}]
        training = {{max_epochs = 3, batch_size = 64}}
        resources = {{actors_per_model = 1, num_cpus = 1, num_gpus = 0}}
        ray = {{num_cpus = 2, object_store_mb = 128, ship_code = true}}
        [tune]
        space = {{lr = {{low = 0.001, high = 0.1, log = true}}, max_epochs = {{value = 2}}}}
        """)


def _without_timings(decisions):
    """A record's ``decisions`` (JSON) without the seconds it measured."""
    if not isinstance(decisions, str):
        return decisions
    return json.dumps({k: v for k, v in json.loads(decisions).items() if "seconds" not in k}, sort_keys=True)


def _comparable(frame: pd.DataFrame, drop=frozenset()) -> pd.DataFrame:
    keep = [c for c in frame.columns if c not in CIRCUMSTANCES | drop]
    frame = frame.assign(decisions=frame["decisions"].map(_without_timings))
    return frame[keep].sort_values(ORDER, na_position="first").reset_index(drop=True)


@pytest.mark.cluster
def test_a_worker_node_without_the_drivers_files_gives_the_single_node_records(tiny_folder, tmp_path, monkeypatch):
    import ray

    from tuning.sweep import run_sweep, trial_records

    if not _unshare_works():
        pytest.skip("needs unshare -m and tmpfs mounts (root in a sandbox)")

    ray.shutdown()  # leave any shared local Ray: this test runs its own clusters
    private = tmp_path / "private"
    (private / "plugins").mkdir(parents=True)
    (private / "plugins" / f"{PLUGIN}.py").write_text(PLUGIN_SOURCE)
    data = shutil.copytree(tiny_folder, private / "data" / "tiny")
    monkeypatch.syspath_prepend(str(private / "plugins"))
    experiment = private / "exp.toml"
    shared_cache = tmp_path / "shared-cache"
    experiment.write_text(_experiment_text(private, data, f"file://{shared_cache}"))
    exp = load_experiment(experiment)

    temp = tempfile.mkdtemp(prefix="tru-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    ray_bin = str(Path(sys.executable).parent / "ray")
    port = _free_port()
    env = os.environ | {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    logs = open(tmp_path / "ray-start.log", "w")
    head = subprocess.Popen([ray_bin, "start", "--head", f"--port={port}", "--num-cpus=0", f"--temp-dir={temp}",
                             "--include-dashboard=false", "--block"], env=env, stdout=logs, stderr=logs,
                            start_new_session=True)
    worker = None
    address = f"127.0.0.1:{port}"
    try:
        hide = [private, *_package_folders()]
        for _ in range(30):  # the head's session folder, whose unpacked runtime environments the worker must not reuse
            sessions = [p for p in Path(temp).glob("session_2*") if p.is_dir()]
            if sessions:
                break
            time.sleep(1)
        else:
            pytest.fail(f"the head started no session in {temp}")
        resources = sessions[0] / "runtime_resources"
        resources.mkdir(exist_ok=True)
        mounts = " && ".join(f'mount -t tmpfs tmpfs "{folder}"' for folder in [*hide, resources])
        hidden = f'{mounts} && exec "{ray_bin}" start --address={address} --num-cpus=2 --block'
        for _ in range(60):  # the head takes a few seconds to listen
            if worker is None or worker.poll() is not None:
                time.sleep(2)
                worker = subprocess.Popen(["unshare", "-m", "sh", "-c", hidden], env=env, stdout=logs, stderr=logs,
                                          start_new_session=True)
                continue
            ray.init(address=address, logging_level="ERROR")
            alive = [n for n in ray.nodes() if n["Alive"]]
            ray.shutdown()
            if len(alive) == 2:
                break
            time.sleep(2)
        else:
            pytest.fail(f"the two-node cluster did not start: {(tmp_path / 'ray-start.log').read_text()[-2000:]}")

        cluster_run = run_experiment(exp, private / "run", address=address, progress=False)
        import harness.distributed.store as store_module  # the sweep's store on a URI: its study stays local

        monkeypatch.setattr(store_module, "RUNS_CACHE", private / "runs-cache")
        cluster_sweep = run_sweep(exp, "private-neggrad", 4, f"file://{private}/sweep", address=address,
                                  progress=False)

        ray.init(address=address, logging_level="ERROR")  # what the worker node sees of the driver's folder
        workers = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU")]

        @ray.remote(num_cpus=1)
        def visible(folder: str) -> list[str]:
            return sorted(os.listdir(folder))

        seen = ray.get(visible.remote(str(private)))
        unseen_code = ray.get(visible.remote(str(Path(__import__("harness").__file__).parent)))
        ray.shutdown()
    finally:
        ray.shutdown()
        for process in (worker, head):
            if process is not None:
                _stop(process, temp)
        logs.close()
        shutil.rmtree(temp, ignore_errors=True)

    assert "data" not in seen and "plugins" not in seen  # the worker could not read the dataset or the plugin
    assert unseen_code == []  # nor the project's own packages: it ran the shipped ones
    stored = ResultsStore(private / "run").read()
    assert cluster_run.done == 3 and set(stored["status"]) == {"ok"}, stored[["method", "status", "error"]]
    assert set(stored["node"]) == set(workers)  # every job ran on the worker node
    assert not stored["run_key"].duplicated().any()
    swept = trial_records(ResultsStore(private / "sweep"), cluster_sweep.sweep)
    assert len(swept) == 4 and set(swept["status"]) == {"ok"} and set(swept["node"]) == set(workers)

    single = tmp_path / "single"  # the same experiment on a one-node Ray that reads every folder
    exp_single = exp.model_copy(update={"cache_dir": str(single / "cache")})
    run_experiment(exp_single, single / "run", progress=False)
    single_sweep = run_sweep(exp_single, "private-neggrad", 4, single / "sweep", progress=False)
    ray.shutdown()
    pd.testing.assert_frame_equal(_comparable(stored), _comparable(ResultsStore(single / "run").read()))
    assert set(stored["restarted"]) == {False}
    pd.testing.assert_frame_equal(_comparable(ResultsStore(private / "sweep").read(), TRIAL_IDS),
                                  _comparable(ResultsStore(single / "sweep").read(), TRIAL_IDS))
    assert single_sweep.trials == cluster_sweep.trials == 4
    models = sorted(p.name for p in shared_cache.glob("*.pt"))  # trained on the worker, once, into the shared URI
    assert models and models == sorted(p.name for p in (single / "cache").glob("*.pt"))
