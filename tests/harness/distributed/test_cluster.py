"""A simulated two-node cluster, each node declaring one GPU (no real device here)."""

import os
from pathlib import Path

import pandas as pd
import pytest

from harness.distributed.experiment import load_experiment
from harness.distributed.runner import run_experiment


@pytest.mark.cluster  # a two-node Ray: make test-cluster
def test_one_gpu_actor_per_node_and_no_device_variables_touched(experiment_file, tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()  # leave the shared local Ray for this test's own cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 1})
    cluster.add_node(num_cpus=1, num_gpus=1)
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        ray.init(address=cluster.address)
        exp = load_experiment(experiment_file(report_seeds="[0, 1]", resources='{num_cpus = 1, num_gpus = "auto"}'))
        summary = run_experiment(exp, tmp_path / "out", progress=False)
        frame = pd.read_parquet(tmp_path / "out")
        assert summary.done == 8 and set(frame["status"]) == {"ok"}
        nodes = frame.groupby("seed")["node"].unique()
        assert all(len(n) == 1 for n in nodes)  # one actor per (dataset, backbone, seed)
        assert nodes[0][0] != nodes[1][0]  # each GPU actor on its own node
        assert set(frame["device"]) == {"cpu"}  # the declared GPUs are not real CUDA devices
        assert os.environ.get("CUDA_VISIBLE_DEVICES") == before
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_every_node_must_run_the_drivers_versions(ray_local, monkeypatch):
    import harness.distributed.cluster as cluster
    from harness.core.errors import UserError

    cluster.check_nodes(timeout=120)  # one local node: the driver's own environment
    real = cluster.environment()
    assert {"python", "torch", "ray", "numpy", "project sources"} <= set(real)
    assert "+" not in real["torch"]  # a CPU and a CUDA build of one release agree
    monkeypatch.setattr(cluster, "environment", lambda plugins=(): real | {"torch": "0.0.1"})  # the driver's side only
    with pytest.raises(UserError, match=rf"^node .*: torch {real['torch']}, the driver has 0.0.1; install") as info:
        cluster.check_nodes(timeout=120)
    assert "\n" not in str(info.value)


def test_the_runtime_env_ships_plugins_and_on_request_the_project(experiment_file):
    import harness
    import methods
    from harness.distributed.cluster import PACKAGES, runtime_env
    from harness.distributed.experiment import load_experiment

    plain = load_experiment(experiment_file(plugins='["methods.faults"]'))
    assert runtime_env(plain) == {"py_modules": [methods]}  # the plugin's top-level package, not methods.faults
    assert runtime_env(load_experiment(experiment_file(plugins="[]"))) == {}
    shipped = runtime_env(load_experiment(experiment_file(plugins="[]", ray="{ship_code = true}")))["py_modules"]
    assert [m.__name__ for m in shipped[:-1]] == list(PACKAGES) and harness in shipped
    metadata = Path(shipped[-1])  # the .dist-info (or, found first from a source tree, the .egg-info) folder
    assert metadata.name.startswith("tru_harness") and metadata.suffix in (".dist-info", ".egg-info")
    assert (metadata / "METADATA").is_file() or (metadata / "PKG-INFO").is_file()
