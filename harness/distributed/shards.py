"""Shard sets trained across the actors hosting one model (exact partitioned unlearning).

A partitioned method (SISA, RecEraser: :meth:`methods.base.UnlearningMethod.plan`)
trains one backbone per shard. Before such a job runs, the runner asks one of the
model's actors for the job's shard sets (``ModelHost.shard_plan``) and trains each set
with :func:`train_set`: the set's shards are a work queue over the given actors, each
actor training one shard at a time into the shared model cache
(``ModelHost.train_shard``, ``num_gpus`` each on a cluster, ``num_cpus`` here). The wall
time from the first dispatch to the last result is the set's measured cost, written
beside the cache (:func:`harness.protocol.shards.write_record`) with the number of
actors, by the set's first actor (``ModelHost.write_shard_record``: on that actor's
node, where the model's jobs look, not on the driver); the job then finds every shard
in the cache and reports that measurement as its ``unlearn_seconds``. (With a model
cache per node, a model whose actors span nodes finds only its own node's shards; a
shared cache is the answer.)
"""

from __future__ import annotations

import logging
import time

import ray

from methods import METHODS, ShardJob, UnlearningMethod

LOG = logging.getLogger("tru")


def partitioned(method: str) -> bool:
    """Whether ``method`` trains shard sets (it overrides ``plan``)."""
    return METHODS.get(method).plan is not UnlearningMethod.plan


def train_set(actors: list, jobs: list[ShardJob]) -> tuple[list[float], list[bool], float] | None:
    """Train ``jobs`` across ``actors`` (``ModelHost`` handles), each actor one shard at a
    time, in order; returns each shard's training seconds, whether it came from the
    cache, and the wall seconds of the whole set; None when a shard failed (its job then
    trains the set itself, and records the error if it fails again)."""
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
    failed = False
    while inflight:
        ready, _ = ray.wait(list(inflight), num_returns=1)
        actor, index = inflight.pop(ready[0])
        try:
            results[index] = ray.get(ready[0])
        except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError) as exc:
            LOG.warning("shard %d of a set failed: %s", index, str(exc).strip().splitlines()[-1])
            failed = True
        give(actor)
    wall = time.perf_counter() - start
    if failed:
        return None
    return [r["train_seconds"] for r in results], [r["cached"] for r in results], wall


def train_sets(actors: list, sets: list[tuple[str, list[ShardJob]]]) -> None:
    """:func:`train_set` for each ``(key, jobs)`` of ``sets`` that has no record yet, then
    its record with ``len(actors)`` workers, both read and written by ``actors[0]`` (a set
    found wholly in the cache has nothing new to record)."""
    for key, jobs in sets:
        if ray.get(actors[0].shard_record.remote(key)) is not None:
            continue
        trained = train_set(actors, jobs)
        if trained is not None and not all(trained[1]):
            ray.get(actors[0].write_shard_record.remote(key, *trained[:2], len(actors), trained[2]))
