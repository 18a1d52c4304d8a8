"""MGCN (Yu et al., "Multi-View Graph Convolutional Network for Multimedia
Recommendation", ACM MM 2023), for any number ``M >= 1`` of modalities.

Shapes: ``U`` users, ``I`` items, ``d`` embedding size, ``f_m`` feature size of m.

* Behaviour-guided purifier: ``x_m = W_m f_m + b_m`` ([I, d]); ``p_m = e_i * sigmoid(G_m x_m + g_m)``
  (item ID embeddings gated by content).
* User-item view: ``E_c = mean_{l=0..L} A_hat^l [e_u; e_i]`` (LightGCN, L = ``ui_layers``).
* Item-item views: ``h_m = S_m^{n} p_m`` with ``S_m`` the normalised cosine kNN graph of
  the raw features (k = ``knn_k``), users ``R_hat h_m``: ``H_m = [R_hat h_m; h_m]``.
* Behaviour-aware fuser: ``a = softmax_m(q(H_m))`` with ``q = W2 tanh(W1 . + b1)``;
  common ``C = sum_m a_m H_m``; specific ``S_m = sigmoid(P_m E_c + p_m) * (H_m - C)``;
  side ``E_s = (C + sum_m S_m) / (M + 1)``; final ``E = E_c + E_s``.
* Loss: BPR + ``reg_weight * 0.5 ||[e_u, e_i, e_j]||^2 / B`` on final embeddings +
  ``cl_weight * (InfoNCE(E_s[i], E_c[i]) + InfoNCE(E_s[u], E_c[u]))`` at temperature 0.2,
  over the *distinct* users and positive items of the batch. The reference repeats a
  node once per occurrence, so a node's copies act as negatives of one another (false
  negatives) and the ``B x B`` logits cost most of the step; distinct nodes remove both
  (on ml100k a 2048-pair batch has ~850 distinct users).

Raw features are trainable (``nn.Embedding.from_pretrained(freeze=False)`` in the
reference); the kNN graphs are built once from the initial features. Defaults follow
the MMRec MGCN config: d = 64, 2 UI layers, 1 item-item layer, k = 10,
reg 1e-4, cl 0.01, lr 1e-3, batch 2048.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from backbones import BACKBONES
from backbones.base import Backbone, Batch, Depth, ParamSpec, Size, Temperature, Weight, gather_rows, propagate
from backbones.blocks.graph import SparseMatrix, UserItemGraph, knn_graph
from backbones.blocks.losses import info_nce, squared_l2


@BACKBONES.register("mgcn")
class MGCN(Backbone):
    """MGCN (Yu et al., ACM MM 2023): content-purified item views and a behaviour-aware fuser over a LightGCN view."""

    min_modalities = 1
    training_defaults = {"lr": 1e-3, "batch_size": 2048, "max_epochs": 300, "patience": 40}

    def __init__(
        self,
        n_users: int,
        n_items: int,
        features: Mapping[str, torch.Tensor],
        dim: Size = 64,
        ui_layers: Depth = 2,
        item_layers: Depth = 1,
        knn_k: Size = 10,
        reg_weight: Weight = 1e-4,
        cl_weight: Weight = 0.01,
        cl_temperature: Temperature = 0.2,
    ):
        super().__init__(n_users, n_items, features)
        self.dim, self.ui_layers, self.item_layers = dim, ui_layers, item_layers
        self.reg_weight, self.cl_weight, self.cl_temperature = reg_weight, cl_weight, cl_temperature
        self.user_embedding = nn.Parameter(torch.empty(n_users, dim))
        self.item_embedding = nn.Parameter(torch.empty(n_items, dim))
        self.features = nn.ParameterDict()
        self.projection = nn.ModuleDict()
        self.purifier = nn.ModuleDict()
        self.preference = nn.ModuleDict()
        self.knn = {}  # modality -> SparseMatrix; fixed, built from the initial features
        for m, feat in features.items():
            feat = torch.as_tensor(feat, dtype=torch.float32)
            self.features[m] = nn.Parameter(feat.clone())
            self.knn[m] = knn_graph(feat, knn_k)
            self.projection[m] = nn.Linear(feat.shape[1], dim)
            self.purifier[m] = nn.Linear(dim, dim)
            self.preference[m] = nn.Linear(dim, dim)
        self.query = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1, bias=False))
        self.reset_parameters()

    def reset_parameters(self):
        self.init_embedding_(self.user_embedding)
        self.init_embedding_(self.item_embedding)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                module.reset_parameters()

    def _knn(self, modality: str, device) -> SparseMatrix:
        if self.knn[modality].csr.device != device:
            self.knn[modality] = self.knn[modality].to(device)
        return self.knn[modality]

    def _views(self, graph: UserItemGraph):
        device = self.user_embedding.device
        ego = torch.cat([self.user_embedding, self.item_embedding])
        content = torch.stack(propagate(graph.adjacency(device=device), ego, self.ui_layers)).mean(0)
        user_item = graph.user_item(device=device)
        views = []
        for m in self.modalities:
            x = self.projection[m](self.features[m])
            h = self.item_embedding * torch.sigmoid(self.purifier[m](x))
            h = propagate(self._knn(m, device), h, self.item_layers)[-1]
            views.append(torch.cat([user_item @ h, h]))
        stacked = torch.stack(views, dim=1)  # [U + I, M, d]
        weights = torch.softmax(self.query(stacked), dim=1)  # [U + I, M, 1]
        common = (weights * stacked).sum(1)
        side = common
        for k, m in enumerate(self.modalities):
            side = side + torch.sigmoid(self.preference[m](content)) * (stacked[:, k] - common)
        side = side / (len(self.modalities) + 1)
        return content, side

    def forward(self, graph: UserItemGraph):
        content, side = self._views(graph)
        final = content + side
        return final[: self.n_users], final[self.n_users :]

    def loss(self, batch: Batch) -> torch.Tensor:
        content, side = self._views(batch.graph)
        final = content + side
        users, items = final[: self.n_users], final[self.n_users :]
        u, i = batch.users, batch.pos_items + self.n_users
        reg = squared_l2(
            gather_rows(users, u), gather_rows(items, batch.pos_items), gather_rows(items, batch.neg_items)
        ) / len(u)
        i, u = torch.unique(i), torch.unique(u)
        cl = info_nce(side[i], content[i], self.cl_temperature) + info_nce(
            side[u], content[u], self.cl_temperature
        )
        return self.ranking_loss(users, items, batch) + self.reg_weight * reg + self.cl_weight * cl

    def parameter_specs(self):
        n_nodes, d = self.n_users + self.n_items, self.dim
        specs = [
            ParamSpec("user_embedding", "id", rows="user"),
            ParamSpec("item_embedding", "id", rows="item"),
        ]
        for m in self.modalities:
            specs += [
                ParamSpec(f"features.{m}", m, rows="item"),
                ParamSpec(f"projection.{m}.weight", m, produces=self.n_items * d),
                ParamSpec(f"projection.{m}.bias", m, produces=self.n_items * d),
                ParamSpec(f"purifier.{m}.weight", m, produces=self.n_items * d),
                ParamSpec(f"purifier.{m}.bias", m, produces=self.n_items * d),
                ParamSpec(f"preference.{m}.weight", m, produces=n_nodes * d),
                ParamSpec(f"preference.{m}.bias", m, produces=n_nodes * d),
            ]
        specs += [
            ParamSpec("query.0.weight", "fusion", produces=n_nodes * d),
            ParamSpec("query.0.bias", "fusion", produces=n_nodes * d),
            ParamSpec("query.2.weight", "fusion", produces=n_nodes * d),
        ]
        return specs
