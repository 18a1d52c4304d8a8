"""The Tune trainable of a sweep: one trial = its configuration on every development
task (development seed x regime), run on free model-host actors.

A trial takes no CPU of its own: for each development seed, in seed order (so two trials
never wait on each other), it leases a host of that seed from the seed's
:class:`HostPool`, sends the seed's jobs (one per regime) and, once all are back, reports
the objectives (each the mean over the tasks) and the records (JSON; the driver stores
them), and gives the hosts back.

A trial is chosen on validation figures only, so its records carry none of the test
split: every test figure of the method and of its references (:data:`TEST_FIGURES`) is
blanked (null in the store) before the record leaves the trial. Test figures exist only
for the re-evaluated front (``split = "test"``, :meth:`tuning.sweep._Sweep.summary`).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import math

import ray
from ray import tune

from harness.distributed.experiment import make_job
from harness.protocol.records import METRICS, REFERENCES, objectives
from methods import METHODS
from tuning.space import params_from


#: the figures a trial record must not carry: every metric read on the test split
TEST_FIGURES = tuple(name for name in METRICS + REFERENCES if "test_" in name)


def validation_only(record: dict) -> dict:
    """``record`` with every test figure (:data:`TEST_FIGURES`) blanked."""
    return record | {name: None for name in TEST_FIGURES if name in record}


@ray.remote(num_cpus=0)
class HostPool:
    """Leases of host indices ``0..n-1``; ``acquire`` waits until one is free."""

    def __init__(self, n: int):
        self.free: asyncio.Queue = asyncio.Queue()
        for index in range(n):
            self.free.put_nowait(index)

    async def acquire(self) -> int:
        return await self.free.get()

    async def release(self, index: int) -> None:
        self.free.put_nowait(index)


def run_trial(config: dict, *, pools: dict, hosts: dict, experiment, dataset: str, backbone: str, method: str,
              fixed: dict, objective_names: list[str], sweep: str) -> None:
    for module in experiment.plugins:  # a plugin method is registered in this process too (runtime_env ships it)
        importlib.import_module(module)
    params = params_from(config, METHODS.get(method), fixed)
    extra = {"sweep": sweep, "split": "valid", "trial_id": tune.get_context().get_trial_id(),
             "config": json.dumps(config, sort_keys=True)}
    leases, pending = [], []
    try:
        for seed in sorted(pools):
            index = ray.get(pools[seed].acquire.remote())
            leases.append((seed, index))
            for regime in experiment.regimes:
                job = make_job(experiment, dataset, backbone, seed, regime, method, params, extra)
                pending.append(hosts[seed][index].run.remote(job))
        records = [validation_only(r) for r in ray.get(pending)]
    finally:
        for seed, index in leases:
            pools[seed].release.remote(index)
    metrics = {}
    for o in objectives(objective_names):
        values = [o.value(r) if r["status"] == "ok" else math.nan for r in records]
        metrics[o.name] = float(sum(values) / len(values))
    tune.report(metrics | {"records": json.dumps(records, default=float)})
