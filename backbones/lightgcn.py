"""LightGCN (He et al., "LightGCN: Simplifying and Powering Graph Convolution Network
for Recommendation", SIGIR 2020): ID embeddings only, parameter-free propagation.

``E^{(l+1)} = A_hat E^{(l)}`` with ``A_hat = D^{-1/2} A D^{-1/2}`` over the bipartite
graph, final ``E = mean_{l=0..L} E^{(l)}``, score ``s(u, i) = e_u . e_i``. Loss: BPR +
``reg_weight * 0.5 (||e_u^0||^2 + ||e_i^0||^2 + ||e_j^0||^2) / B`` on the layer-0 rows
of the batch (the paper's regulariser). Defaults: 64-d, Xavier init, 2 layers, lr 1e-3,
batch 2048 (MMRec's LightGCN settings).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from backbones import BACKBONES
from backbones.base import Backbone, Batch, Depth, ParamSpec, Size, Weight, gather_rows, propagate
from backbones.blocks.graph import UserItemGraph
from backbones.blocks.losses import squared_l2


@BACKBONES.register("lightgcn")
class LightGCN(Backbone):
    """LightGCN (He et al., SIGIR 2020): ID embeddings propagated over the user-item graph, no content."""

    training_defaults = {"lr": 1e-3, "batch_size": 2048, "max_epochs": 400, "patience": 50}

    def __init__(
        self,
        n_users: int,
        n_items: int,
        features: Mapping[str, torch.Tensor] | None = None,
        dim: Size = 64,
        layers: Depth = 2,
        reg_weight: Weight = 1e-4,
    ):
        super().__init__(n_users, n_items, {})  # ID-only: content features are ignored
        self.dim, self.layers, self.reg_weight = dim, layers, reg_weight
        self.user_embedding = nn.Parameter(torch.empty(n_users, dim))
        self.item_embedding = nn.Parameter(torch.empty(n_items, dim))
        self.reset_parameters()

    def reset_parameters(self):
        self.init_embedding_(self.user_embedding)
        self.init_embedding_(self.item_embedding)

    def forward(self, graph: UserItemGraph):
        ego = torch.cat([self.user_embedding, self.item_embedding])
        layers = propagate(graph.adjacency(device=ego.device), ego, self.layers)
        final = torch.stack(layers).mean(0)
        return final[: self.n_users], final[self.n_users :]

    def loss(self, batch: Batch) -> torch.Tensor:
        users, items = self(batch.graph)
        reg = squared_l2(
            gather_rows(self.user_embedding, batch.users),
            gather_rows(self.item_embedding, batch.pos_items),
            gather_rows(self.item_embedding, batch.neg_items),
        ) / len(batch.users)
        return self.ranking_loss(users, items, batch) + self.reg_weight * reg

    def parameter_specs(self):
        return [
            ParamSpec("user_embedding", "id", rows="user"),
            ParamSpec("item_embedding", "id", rows="item"),
        ]
