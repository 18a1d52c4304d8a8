"""MIG-GT (Hu et al., "Modality-Independent Graph Neural Networks with Global
Transformers for Multimodal Recommendation", AAAI 2025), for any modalities.

Facts from the authors' code (``mig_gt/layers/mirf_gt.py``, ``mgdcf.py``, Baby config):

* Modality-independent receptive fields: each branch propagates on its own with its
  own hop count ``K_b`` (MGDCF diffusion over ``A_hat = D^{-1/2}(A + I)D^{-1/2}``):
  ``h^{k+1} = beta A_hat' h^k + alpha h^0``, output ``h^K / gamma_K`` with
  ``gamma_K = beta^K + alpha sum_{k<K} beta^k``; ``A_hat'`` has edge dropout.
  The ``id`` branch starts from ``[e_u; 0]`` (item ID embeddings are off in the
  authors' settings), branch ``m`` from ``[0; MLP_m(f_m)]`` with
  ``MLP_m = Linear(f_m, 512) BN PReLU Dropout Linear(512, d) BN PReLU``.
* ``z = z_drop(sum_b h_b)`` ([U + I, d]).
* Sampling-based global transformer: every node attends over itself plus
  ``num_samples`` uniformly sampled items: ``X = [z_n; z_{s_1}..z_{s_S}]`` ([N, 1+S, d]),
  ``O = 0.1 softmax(X W_q (X W_k)^T / sqrt(a)) X + 0.9 X`` (a = 4), output ``O[:, 0]``.
* Loss: BPR (1 negative) + ``l2 * 0.5 ||[Z_u; Z_i]||^2 / B`` + the unsmoothing term
  ``CE(z_u . O_i[0..S], target 0)`` that pushes a user towards its item and away from
  the item's sampled context. The reference sums over the batch; we average (the same
  optimum under Adam, with the l2 term divided by B to keep the ratio).
* Features wider than ``project_dim`` are reduced by a fixed seeded Gaussian random
  projection (the reference's ``use_rp``, which projects image features to the text
  width); ``project_dim=None`` uses the narrowest modality's width.

The transformer's sampling draws from torch's RNG also in evaluation; the harness
evaluates under a fixed seed so evaluation is repeatable (``backbones.base.eval_embeddings``).
Defaults: the authors' Baby settings (lr 1e-2, decay 0.99 per epoch, batch 8000,
l2 1e-5, K_id = 4, K_text = 2, K_image = 1, other modalities 2, alpha 0.1, beta 0.9,
dropouts 0.3 / 0.2, 10 samples).
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from backbones import BACKBONES
from backbones.base import Backbone, Batch, Depth, ParamSpec, Rate, Size, Weight, gather_rows, xavier_linear
from backbones.blocks.graph import SparseMatrix, UserItemGraph
from backbones.blocks.losses import squared_l2

BABY_HOPS = {"text": 2, "image": 1}


def _mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        xavier_linear(in_dim, hidden),
        nn.BatchNorm1d(hidden),
        nn.PReLU(init=0.25),
        nn.Dropout(dropout),
        xavier_linear(hidden, out_dim),
        nn.BatchNorm1d(out_dim),
        nn.PReLU(init=0.25),
    )


@BACKBONES.register("miggt")
class MIGGT(Backbone):
    """MIG-GT (Hu et al., AAAI 2025): modality-independent receptive fields and a sampling-based global transformer."""

    min_modalities = 1
    training_defaults = {
        "lr": 1e-2,
        "lr_decay": 0.99,
        "batch_size": 8000,
        "max_epochs": 300,
        "patience": 100,
    }

    def __init__(
        self,
        n_users: int,
        n_items: int,
        features: Mapping[str, torch.Tensor],
        dim: Size = 64,
        hidden: Size = 512,
        id_hops: Depth = 4,
        modality_hops: Mapping[str, int] | None = None,
        default_hops: Depth = 2,
        alpha: Weight = 0.1,
        beta: Weight = 0.9,
        feature_dropout: Rate = 0.3,
        input_dropout: Rate = 0.3,
        node_dropout: Rate = 0.3,
        edge_dropout: Rate = 0.2,
        output_dropout: Rate = 0.2,
        num_samples: Size = 10,
        attention_dim: Size = 4,
        l2_weight: Weight = 1e-5,
        project_dim: int | None = None,
        projection_seed: int = 0,
    ):
        super().__init__(n_users, n_items, features)
        hops = dict(BABY_HOPS if modality_hops is None else modality_hops)
        self.dim, self.alpha, self.beta = dim, alpha, beta
        self.hops = {"id": id_hops} | {m: hops.get(m, default_hops) for m in self.modalities}
        self.num_samples, self.l2_weight = num_samples, l2_weight
        self.input_dropout = nn.Dropout(input_dropout)
        self.node_dropout = nn.Dropout(node_dropout)
        self.edge_dropout = nn.Dropout(edge_dropout)
        self.output_dropout = nn.Dropout(output_dropout)
        widths = {m: torch.as_tensor(f).shape[1] for m, f in features.items()}
        project_dim = min(widths.values()) if project_dim is None else project_dim
        gen = torch.Generator().manual_seed(projection_seed)
        self.encoder = nn.ModuleDict()
        for m, feat in features.items():
            feat = torch.as_tensor(feat, dtype=torch.float32)
            if feat.shape[1] > project_dim:
                proj = torch.randn(feat.shape[1], project_dim, generator=gen) / math.sqrt(project_dim)
                feat = feat @ proj
            self.register_buffer(f"feat_{m}", feat, persistent=False)
            self.encoder[m] = _mlp(feat.shape[1], hidden, dim, feature_dropout)
        self.user_embedding = nn.Parameter(torch.empty(n_users, dim))
        self.query = xavier_linear(dim, attention_dim)
        self.key = xavier_linear(dim, attention_dim)
        self.reset_parameters()

    def init_embedding_(self, table: torch.Tensor) -> torch.Tensor:
        """``N(0, 1/d)`` rows, as the authors' code draws its user embeddings."""
        with torch.no_grad():
            return table.normal_(0.0, 1.0 / math.sqrt(self.dim))

    def reset_parameters(self):
        self.init_embedding_(self.user_embedding)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm1d, nn.PReLU)):
                module.reset_parameters()

    def _diffuse(self, adjacency: SparseMatrix, h0: torch.Tensor, hops: int) -> torch.Tensor:
        """MGDCF: ``K`` steps of ``h <- beta A' h + alpha h0``, divided by ``gamma_K``."""
        dropped = adjacency.with_values(self.edge_dropout(adjacency.values()))
        h = h0
        for _ in range(hops):
            h = self.beta * (dropped @ h) + self.alpha * h0
        gamma = self.beta**hops + self.alpha * sum(self.beta**k for k in range(hops))
        return h / gamma

    def _encode(self, graph: UserItemGraph):
        """``z`` ([U + I, d]) and the transformer output ``O`` ([U + I, 1 + S, d])."""
        adjacency = graph.adjacency(self_loops=True, device=self.user_embedding.device)
        user_zeros = torch.zeros_like(self.user_embedding)
        item_zeros = self.user_embedding.new_zeros(self.n_items, self.dim)
        z = self._diffuse(
            adjacency, torch.cat([self.node_dropout(self.user_embedding), item_zeros]), self.hops["id"]
        )
        for m in self.modalities:
            encoded = self.encoder[m](self.input_dropout(getattr(self, f"feat_{m}")))
            h0 = torch.cat([user_zeros, self.node_dropout(encoded)])
            z = z + self._diffuse(adjacency, h0, self.hops[m])
        z = self.output_dropout(z)
        samples = torch.randint(self.n_items, (len(z), self.num_samples), device=z.device)
        context = torch.cat([z.unsqueeze(1), gather_rows(z[self.n_users :], samples)], dim=1)
        q, k = self.query(context), self.key(context)
        attention = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1)
        return 0.1 * (attention @ context) + 0.9 * context

    def forward(self, graph: UserItemGraph):
        final = self._encode(graph)[:, 0]
        return final[: self.n_users], final[self.n_users :]

    def loss(self, batch: Batch) -> torch.Tensor:
        out = self._encode(batch.graph)
        final = out[:, 0]
        users, items = final[: self.n_users], final[self.n_users :]
        u = gather_rows(users, batch.users)
        unsmooth_logits = (gather_rows(out, self.n_users + batch.pos_items) @ u.unsqueeze(-1)).squeeze(-1)
        unsmooth = F.cross_entropy(unsmooth_logits, torch.zeros_like(batch.users))
        l2 = self.l2_weight * squared_l2(users, items) / len(batch.users)
        return self.ranking_loss(users, items, batch) + l2 + unsmooth

    def parameter_specs(self):
        n_nodes, d = self.n_users + self.n_items, self.dim
        specs = [ParamSpec("user_embedding", "id", rows="user")]
        for m in self.modalities:
            for name, _ in self.encoder[m].named_parameters():
                specs.append(ParamSpec(f"encoder.{m}.{name}", m, produces=self.n_items * d))
        for name in ("query.weight", "query.bias", "key.weight", "key.bias"):
            specs.append(ParamSpec(name, "fusion", produces=n_nodes * d))
        return specs
