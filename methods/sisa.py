"""SISA: exact unlearning by sharded training (Bourtoule et al., "Machine Unlearning",
IEEE S&P 2021), as recommendation benchmarks adapt it (CURE4Rec, NeurIPS 2024, code
``xiye7lai/CURE4Rec``; UltraRE, NeurIPS 2023, code ``ZhangYizhao/UltraRE``).

* **Shards.** ``D`` is split into ``n_shards`` disjoint shards by users at random (the
  default, as CURE4Rec and UltraRE do) or by interactions at random
  (:func:`methods.sharding.random_partition`, seeded by the job's seed, fixed on ``D``).
  No slices (neither benchmark keeps them; SISA's own default is one slice).
* **Original.** One backbone per shard, trained from scratch on its shard with the
  experiment's training settings, early-stopped on its own validation pairs
  (:func:`methods.sharding.shard_validation`), from seed ``seed + 10000 (k + 1)``.
* **Prediction.** By users: each user is scored by their own shard's model (CURE4Rec
  serves each user from their group's model; the other shards never saw the user). By
  interactions: the mean of the shard models' scores (SISA's averaged prediction;
  :class:`methods.sharding.ShardEnsemble`).
* **Unlearning.** The shards holding a pair of ``D_f`` are retrained from scratch on
  what they keep, with the same seeds; the others are kept as they are, which is exact:
  they never saw ``D_f``. ``unlearn_seconds`` is the wall time of that retraining (the
  harness trains the set ahead across the actors, :mod:`harness.protocol.shards`).

A random deletion touches most shards once it holds more than a handful of users (5%
of ml100k's users is 47 users in 5 shards), so then SISA retrains nearly everything;
its advantage is for small, repeated requests (sequential deletion).
"""

from __future__ import annotations

from methods.base import METHODS, Budget, ForgetTask, HyperParameter, UnlearningMethod
from methods.sharding import Partition, ShardEnsemble, check_unit, random_partition, shard_jobs, training_pairs

UNITS = ("user", "interaction")


@METHODS.register("sisa")
class Sisa(UnlearningMethod):
    """SISA (Bourtoule et al., S&P 2021): one model per random shard; a deletion retrains only the shards it touches (exact)."""

    hyperparameters = (
        HyperParameter("n_shards", int, 5, 2, 64, doc="disjoint shards of D"),
        HyperParameter("unit", str, "user", doc="what a shard holds whole: user | interaction"),
    )
    tuned = ()  # an exact method: nothing to trade off

    def __init__(self, **params):
        super().__init__(**params)
        check_unit("sisa", self.params["unit"], UNITS)

    def partition(self, task: ForgetTask, budget: Budget) -> Partition:
        return random_partition(training_pairs(task), task.n_users, task.n_items, self.params["n_shards"],
                                self.params["unit"], seed=budget.seed)

    def plan(self, model, task: ForgetTask, budget: Budget):
        part = self.partition(task, budget)
        original = shard_jobs(part, training_pairs(task), task.valid, budget.seed)
        retrained = shard_jobs(part, task.retain, task.retained_valid(), budget.seed, part.affected(task.forget))
        return [original, retrained]

    def start(self, model, task: ForgetTask, budget: Budget):
        original, _ = self.plan(model, task, budget)
        trained = budget.train_shards(original)
        self.decisions["original_train_seconds_total"] = sum(trained.train_seconds)
        part = self.partition(task, budget)
        return ShardEnsemble(trained.models, part, "own" if part.unit == "user" else "mean")

    def unlearn(self, model: ShardEnsemble, task: ForgetTask, budget: Budget):
        part = model.partition
        affected = part.affected(task.forget)
        retrained = budget.train_shards(shard_jobs(part, task.retain, task.retained_valid(), budget.seed, affected))
        for k, shard in zip(affected, retrained.models):
            model.shard_models[k] = shard
        model.partition = part.restricted(task.retain)  # keeps no trace of the deleted pairs
        model._graphs = None
        self.costs = {"unlearn_seconds": retrained.wall_seconds, "train_seconds_total": sum(retrained.train_seconds)}
        self.decisions |= {"affected_shards": affected, "retrained": f"{len(affected)} of {part.n_shards}",
                           "shard_pairs": part.sizes(task.retain), "workers": retrained.workers}
        return model
