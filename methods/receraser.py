"""RecEraser's attention aggregator over frozen shard models (Chen et al., "Recommendation
Unlearning", WWW 2022; TensorFlow code ``chenchongthu/Recommendation-Unlearning``,
``RecEraser_BPR.py`` / ``RecEraser_LightGCN.py``).

Shard ``k``'s final embeddings ``e_k`` (its model over the graph restricted to its
shard, :class:`methods.sharding.ShardEnsemble`) are transformed and combined per user and
per item:

* ``e'_k = W_k e_k + b_k`` with ``W_k [d, d]``, ``b_k [d]`` per shard, shared by users and items;
* ``a_k = softmax_k( h^T ReLU(W_a e'_k + b_a) )`` with ``W_a [d, d/2]``, ``b_a [d/2]``,
  ``h [d/2]`` (one set for users, one for items);
* ``e = sum_k a_k e'_k``, and the score ``s(u, i) = e_u . e_i``.

Training (two stages, as theirs): the shard models first, each on its shard alone; then
the aggregator with BPR on the training pairs while the shard embeddings are frozen
(their ``tf.stop_gradient``), with dropout on the aggregated user embedding and
``1e-5 (||W||^2 + ||b||^2)`` on the shard transforms (``RecEraser_BPR.py``; their
LightGCN variant instead aggregates the layer-0 embeddings and propagates them over the
full graph, which presumes one architecture; aggregating each backbone's final
embeddings serves every backbone). Initialisation: the attention as theirs (``W_a``
truncated normal of std ``sqrt(2 / (d + d/2))``, biases 0, ``h = 0.01``, so the first
weights are near uniform); ``W_k = I`` (their repository does not say; with it the
untrained aggregate is the shards' mean embedding).
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from backbones.base import Backbone, Batch, ParamSpec, eval_embeddings, gather_rows
from backbones.blocks.graph import UserItemGraph
from backbones.blocks.losses import bpr_loss
from harness.core.seeding import seeded
from methods.base import METHODS, Budget, ForgetTask, HyperParameter, UnlearningMethod
from methods.sharding import (UNITS, Partition, ShardEnsemble, balanced_kmeans, canonical, check_unit, shard_jobs,
                              training_pairs)

#: dropout on the aggregated user embedding during training (their keep probability 0.7)
DROPOUT = 0.3
#: weight of the L2 term on the shard transforms (their ``1e-5 * (l2(trans_W) + l2(trans_B))``)
TRANSFORM_REG = 1e-5


def _truncated_normal_(tensor: torch.Tensor, std: float) -> torch.Tensor:
    return nn.init.trunc_normal_(tensor, std=std, a=-2 * std, b=2 * std)


class Attention(nn.Module):
    """``a_k = softmax_k(h^T ReLU(W_a e'_k + b_a))`` over the shard axis of ``[n, K, d]``."""

    def __init__(self, dim: int):
        super().__init__()
        hidden = max(1, dim // 2)
        self.weight = nn.Parameter(_truncated_normal_(torch.empty(dim, hidden), math.sqrt(2.0 / (dim + hidden))))
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.h = nn.Parameter(torch.full((hidden,), 0.01))

    def forward(self, embs: torch.Tensor) -> torch.Tensor:
        logits = torch.relu(embs @ self.weight + self.bias) @ self.h  # [n, K]
        return (torch.softmax(logits, dim=1).unsqueeze(2) * embs).sum(1)


class AggregatedShards(Backbone):
    """Frozen shard models and RecEraser's trainable aggregator (module docstring).
    ``forward`` -> ``(users [U, d], items [I, d])``; only the aggregator has gradients."""

    name = "receraser-aggregate"

    def __init__(self, shards: list[Backbone], partition: Partition, dim: int):
        first = shards[0]
        super().__init__(first.n_users, first.n_items, {})
        self.ensemble = ShardEnsemble(shards, partition)
        for p in self.ensemble.parameters():
            p.requires_grad_(False)
        k = len(shards)
        self.transform = nn.Parameter(torch.eye(dim).repeat(k, 1, 1))
        self.transform_bias = nn.Parameter(torch.zeros(k, dim))
        self.user_attention, self.item_attention = Attention(dim), Attention(dim)
        self._frozen: tuple | None = None  # (graph, stacked shard embeddings): the last graph seen

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_frozen": None}  # copies and pickles drop the embedding cache

    def shard_embeddings(self, graph: UserItemGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """Each shard model's final embeddings over its part of ``graph`` in eval mode,
        stacked ``(users [U, K, d], items [I, K, d])``; computed once per graph (frozen)."""
        if self._frozen is None or self._frozen[0] is not graph:
            outputs = [eval_embeddings(model, g)  # eval mode, the evaluation seed: a fixed input
                       for model, g in zip(self.ensemble.shard_models, self.ensemble.shard_graphs(graph))]
            self._frozen = (graph, torch.stack([u for u, _ in outputs], 1), torch.stack([i for _, i in outputs], 1))
        return self._frozen[1], self._frozen[2]

    def _transformed(self, embs: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nkd,kde->nke", embs, self.transform) + self.transform_bias

    def forward(self, graph: UserItemGraph) -> tuple[torch.Tensor, torch.Tensor]:
        users, items = self.shard_embeddings(graph)
        return self.user_attention(self._transformed(users)), self.item_attention(self._transformed(items))

    def loss(self, batch: Batch) -> torch.Tensor:
        """BPR of the aggregated embeddings, dropout on the user side, L2 on the transforms."""
        users, items = self(batch.graph)
        u = nn.functional.dropout(gather_rows(users, batch.users), DROPOUT, self.training)
        pos = (u * gather_rows(items, batch.pos_items)).sum(1)
        neg = (u * gather_rows(items, batch.neg_items)).sum(1)
        reg = TRANSFORM_REG * (self.transform.square().sum() + self.transform_bias.square().sum())
        return bpr_loss(pos, neg) + reg

    def parameter_specs(self) -> list[ParamSpec]:
        return [ParamSpec(name, "fusion") for name, _ in self.named_parameters() if not name.startswith("ensemble.")]


@METHODS.register("receraser")
class RecEraser(UnlearningMethod):
    """RecEraser (Chen et al., WWW 2022): balanced k-means shards of D and an attention aggregator; a deletion retrains the shards it touches and the aggregator (exact)."""

    hyperparameters = (
        HyperParameter("n_shards", int, 10, 2, 64, doc="shards of D (their default 10)"),
        HyperParameter("unit", str, "interaction",
                       doc="what is clustered: user (UBP) | item (IBP) | interaction (InBP, their default)"),
        HyperParameter("iterations", int, 50, 1, 500, doc="balanced k-means rounds (their part_T 50)"),
    )
    tuned = ()  # an exact method: nothing to trade off

    def __init__(self, **params):
        super().__init__(**params)
        check_unit("receraser", self.params["unit"], UNITS)
        self._partition: Partition | None = None

    def partition(self, model: Backbone, task: ForgetTask, budget: Budget) -> Partition:
        """Balanced k-means on the trained original's embeddings over ``G`` (their
        pretrained WMF embeddings; both are learned from ``D``, never from which pairs are
        forgotten), computed once per instance. As in the paper, the partition is learned
        from all of ``D``, ``D_f`` included, and kept after a deletion: the models are
        exact given the partition, not the partition itself."""
        if self._partition is None:
            pairs = training_pairs(task)
            users, items = eval_embeddings(model, UserItemGraph(torch.from_numpy(pairs), task.n_users, task.n_items))
            self._partition = balanced_kmeans(users.cpu().numpy(), items.cpu().numpy(), pairs, self.params["n_shards"],
                                              self.params["unit"], self.params["iterations"], seed=budget.seed)
        return self._partition

    def plan(self, model, task: ForgetTask, budget: Budget):
        part = self.partition(model, task, budget)
        return [shard_jobs(part, training_pairs(task), task.valid, budget.seed),
                shard_jobs(part, task.retain, task.retained_valid(), budget.seed, part.affected(task.forget))]

    def _aggregated(self, shards: list[Backbone], part: Partition, pairs, valid, budget: Budget) -> tuple:
        """A fresh aggregator over ``shards`` (seeded), trained on ``pairs`` with the harness's
        loop (early stopping on ``valid``); returns it and its training seconds."""
        first = shards[0]
        pairs = canonical(pairs)  # as a shard's pairs: the same rows whatever order D_r came in
        dim = eval_embeddings(first, UserItemGraph(torch.from_numpy(pairs), first.n_users, first.n_items))[0].shape[1]
        with seeded(budget.seed):
            model = AggregatedShards(shards, part, dim).to(first.device)
        return model, budget.fit(model, pairs, valid)

    def start(self, model, task: ForgetTask, budget: Budget):
        original, _ = self.plan(model, task, budget)
        trained = budget.train_shards(original)
        aggregated, seconds = self._aggregated(trained.models, self._partition, training_pairs(task), task.valid, budget)
        self.decisions["original_train_seconds_total"] = sum(trained.train_seconds) + seconds
        return aggregated

    def unlearn(self, model: AggregatedShards, task: ForgetTask, budget: Budget):
        part = model.ensemble.partition
        affected = part.affected(task.forget)
        retrained = budget.train_shards(shard_jobs(part, task.retain, task.retained_valid(), budget.seed, affected))
        shards = list(model.ensemble.shard_models)
        for k, shard in zip(affected, retrained.models):
            shards[k] = shard
        start = time.perf_counter()
        aggregated, seconds = self._aggregated(shards, part.restricted(task.retain), task.retain,
                                               task.retained_valid(), budget)
        aggregator_seconds = time.perf_counter() - start
        self.costs = {"unlearn_seconds": retrained.wall_seconds + aggregator_seconds,
                      "train_seconds_total": sum(retrained.train_seconds) + seconds}
        self.decisions |= {"affected_shards": affected, "retrained": f"{len(affected)} of {part.n_shards}",
                           "shard_pairs": part.sizes(task.retain), "workers": retrained.workers,
                           "aggregator_seconds": aggregator_seconds}
        return aggregated
