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

import torch
from torch import nn

from backbones.base import Backbone, Batch, ParamSpec, gather_rows
from backbones.blocks.graph import UserItemGraph
from backbones.blocks.losses import bpr_loss
from methods.sharding import Partition, ShardEnsemble

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

    def shard_embeddings(self, graph: UserItemGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """Each shard model's final embeddings over its part of ``graph`` in eval mode,
        stacked ``(users [U, K, d], items [I, K, d])``; computed once per graph (frozen)."""
        if self._frozen is None or self._frozen[0] is not graph:
            outputs = []
            with torch.no_grad():
                for model, g in zip(self.ensemble.shard_models, self.ensemble.shard_graphs(graph)):
                    was = model.training
                    model.eval()
                    outputs.append(model(g))
                    model.train(was)
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
