"""Shard sets trained across the actors hosting one model (exact partitioned unlearning).

A partitioned method (SISA, RecEraser: :meth:`methods.base.UnlearningMethod.plan`)
trains one backbone per shard. Before such a job runs, the runner asks one of the
model's actors for the job's shard sets (``ModelHost.shard_plan``) and trains each set
with :func:`train_set`: the set's shards are a work queue over the given actors, each
actor training one shard at a time into the shared model cache
(``ModelHost.train_shard``, ``num_gpus`` each on a cluster, ``num_cpus`` here). The wall
time from the first dispatch to the last result is the set's measured cost, written
beside the cache (:func:`harness.protocol.shards.write_record`) with the number of
actors; the job then finds every shard in the cache and reports that measurement as its
``unlearn_seconds``.
"""

from __future__ import annotations

import time

import ray

from harness.protocol.shards import read_record, write_record
from methods import METHODS, ShardJob, UnlearningMethod


def partitioned(method: str) -> bool:
    """Whether ``method`` trains shard sets (it overrides ``plan``)."""
    return METHODS.get(method).plan is not UnlearningMethod.plan


def train_set(actors: list, jobs: list[ShardJob]) -> tuple[list[float], list[bool], float]:
    """Train ``jobs`` across ``actors`` (``ModelHost`` handles), each actor one shard at a
    time, in order; returns each shard's training seconds, whether it came from the
    cache, and the wall seconds of the whole set."""
    start = time.perf_counter()
    pending = list(enumerate(jobs))
    inflight: dict = {}
    results: list[dict | None] = [None] * len(jobs)

    def give(actor) -> None:
        if pending:
            index, job = pending.pop(0)
            inflight[actor.train_shard.remote(job)] = (actor, index)

    for actor in actors:
        give(actor)
    while inflight:
        ready, _ = ray.wait(list(inflight), num_returns=1)
        actor, index = inflight.pop(ready[0])
        results[index] = ray.get(ready[0])
        give(actor)
    wall = time.perf_counter() - start
    return [r["train_seconds"] for r in results], [r["cached"] for r in results], wall


def train_sets(actors: list, sets: list[tuple[str, list[ShardJob]]], cache_dir) -> None:
    """:func:`train_set` for each ``(key, jobs)`` of ``sets`` that has no record yet, then
    its record with ``len(actors)`` workers (a set found wholly in the cache has nothing
    new to record)."""
    for key, jobs in sets:
        if read_record(cache_dir, key) is not None:
            continue
        seconds, cached, wall = train_set(actors, jobs)
        if not all(cached):
            write_record(cache_dir, key, seconds, cached, len(actors), wall)
