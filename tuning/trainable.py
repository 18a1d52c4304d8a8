"""The Tune trainable of a sweep: one trial = one job sent to a free model-host actor.

A trial takes no CPU of its own: it leases a host from :class:`HostPool` (so at most one
trial per host runs at a time and concurrency follows the number of hosts), sends the
job, reports the objectives and the whole record (JSON; the driver stores it), and
gives the host back.
"""

from __future__ import annotations

import asyncio
import json
import math

import ray
from ray import tune

from harness.distributed.experiment import make_job
from harness.protocol.records import objectives
from methods import METHODS
from tuning.space import params_from


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


def run_trial(config: dict, *, pool, hosts: list, experiment, dataset: str, backbone: str, seed: int, regime,
              method: str, fixed: dict, objective_names: list[str], sweep: str) -> None:
    params = params_from(config, METHODS.get(method), fixed)
    extra = {"sweep": sweep, "split": "valid", "trial_id": tune.get_context().get_trial_id(),
             "config": json.dumps(config, sort_keys=True)}
    job = make_job(experiment, dataset, backbone, seed, regime, method, params, extra)
    index = ray.get(pool.acquire.remote())
    try:
        record = ray.get(hosts[index].run.remote(job))
    finally:
        pool.release.remote(index)
    metrics = {o.name: o.value(record) if record["status"] == "ok" else math.nan for o in objectives(objective_names)}
    tune.report(metrics | {"record": json.dumps(record, default=float)})
