"""Training shard sets (exact partitioned unlearning) into the model cache, and the
record of how long each set took.

A *shard set* is the list of :class:`methods.base.ShardJob` a partitioned method asks
for at once: the shards of its original, or the affected shards it retrains for a
deletion. Each shard model is a cached model like every other
(:func:`harness.protocol.models.train_backbone`, keyed by its pairs, validation pairs and
seed). Its unlearning cost is the *wall time* of training the set, which depends on how
many workers trained it side by side, so it is measured when the set is trained and kept
beside the cache in ``<cache>/shard-sets/<set key>.json`` (a folder or a URI,
:class:`harness.storage.model_cache.ModelCache`) (``wall_seconds``, ``workers``,
``train_seconds`` per shard, ``how``): a set found in the cache later reports that
measurement, as the retrained reference reports its training time.

``how`` says how the wall time was obtained: ``measured`` (every shard of the set was
trained in that one dispatch) or ``schedule`` (some shards were already cached, say
after an interrupted run: the wall time is then the makespan of the measured per-shard
seconds under longest-first scheduling on the workers, :func:`makespan`, which may
differ from what the runner's in-order dispatch would have taken).

:class:`ShardTrainer` is the in-process ``budget.train_shards``: it trains the set's
shards one after another (``workers = 1``). The Ray runner trains the sets of a
partitioned method's jobs ahead, across the actors hosting the model
(:mod:`harness.distributed.runner`), and writes their record with the actors' count.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backbones import BACKBONES
from backbones.base import Backbone
from harness.core.versions import model_code_version, modules_of
from harness.data.datasets import Dataset
from harness.protocol.models import train_backbone
from harness.storage.model_cache import ModelCache, as_cache
from methods.base import ShardJob, TrainedShards

FOLDER = "shard-sets"


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.int64).tobytes()).hexdigest()


def set_key(dataset: Dataset, backbone: str, hparams: dict, train_overrides: dict, jobs: list[ShardJob],
            device="cpu") -> str:
    """A hash of everything the set's models depend on (as the model cache keys them) and
    the kind of device they train on (its wall time depends on it)."""
    parts = {"data": dataset.fingerprint, "backbone": backbone, "hparams": hparams, "training": train_overrides,
             "device": torch.device(device).type,
             "code": model_code_version(modules_of(BACKBONES.get(backbone), Backbone)),
             "shards": [[_digest(j.train), _digest(j.valid), j.seed] for j in jobs]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def makespan(seconds: list[float], workers: int) -> float:
    """The finishing time of ``seconds`` jobs on ``workers`` workers, longest first, each
    to the worker that is free first (LPT scheduling)."""
    free = [0.0] * max(1, workers)
    for s in sorted(seconds, reverse=True):
        heapq.heappush(free, heapq.heappop(free) + s)
    return max(free)


def read_record(cache_dir: ModelCache | str | Path | None, key: str) -> dict | None:
    cache = as_cache(cache_dir)
    return None if cache is None else cache.read_json(f"{FOLDER}/{key}.json")


def write_record(cache_dir: ModelCache | str | Path | None, key: str, train_seconds: list[float], cached: list[bool], workers: int,
                 wall_seconds: float) -> dict:
    """The set's record (module docstring), written atomically; it replaces an older one
    (a set trained again, say after its models left the cache, reports the new measurement)."""
    if all(cached):
        raise ValueError("every shard came from the cache: there is no new measurement to record")
    record = ({"wall_seconds": wall_seconds, "how": "measured"} if not any(cached)
              else {"wall_seconds": makespan(train_seconds, workers), "how": "schedule"})
    record |= {"workers": workers, "train_seconds": train_seconds}
    cache = as_cache(cache_dir)
    if cache is not None:
        cache.write_json(f"{FOLDER}/{key}.json", record)
    return record


@dataclass
class ShardTrainer:
    """``budget.train_shards`` in one process: the set's shards one after another, each
    from the model cache when it is there (module docstring)."""

    dataset: Dataset
    backbone: str
    hparams: dict
    train_overrides: dict
    device: object
    cache_dir: ModelCache | str | Path | None

    def train_one(self, job: ShardJob):
        return train_backbone(self.dataset, self.backbone, job.seed, self.hparams, self.train_overrides,
                              train_pairs=job.train, valid_pairs=job.valid, device=self.device,
                              cache_dir=self.cache_dir, progress=False)

    def key(self, jobs: list[ShardJob]) -> str:
        return set_key(self.dataset, self.backbone, self.hparams, self.train_overrides, jobs, self.device)

    def __call__(self, jobs: list[ShardJob]) -> TrainedShards:
        start = time.perf_counter()
        trained = [self.train_one(job) for job in jobs]
        wall = time.perf_counter() - start
        key = self.key(jobs)
        seconds = [float(t.meta["train_seconds"]) for t in trained]
        cached = [t.cached for t in trained]
        if not all(cached):  # trained here, now: this is the measurement
            record = write_record(self.cache_dir, key, seconds, cached, 1, wall)
        else:  # trained ahead (across actors) or earlier: what was measured then
            record = read_record(self.cache_dir, key) or {"wall_seconds": makespan(seconds, 1), "workers": 1,
                                                          "how": "schedule"}
        return TrainedShards([t.model for t in trained], seconds, float(record["wall_seconds"]), int(record["workers"]))
