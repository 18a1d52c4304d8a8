"""A simulated two-node cluster, each node declaring one GPU (no real device here)."""

import os

import pandas as pd

from harness.distributed.experiment import load_experiment
from harness.distributed.runner import run_experiment


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
