"""Loss terms shared by every backbone and method (one home for BPR)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking (Rendle et al. 2009).

    ``mean(-log sigmoid(s(u,i) - s(u,j)))`` over ``[B]`` score tensors, computed as
    ``softplus(s(u,j) - s(u,i))`` for stability. The reverse (forgetting) term of
    unlearning is ``bpr_loss(neg_scores, pos_scores)``.
    """
    return F.softplus(neg_scores - pos_scores).mean()


def squared_l2(*tensors: torch.Tensor) -> torch.Tensor:
    """``sum_t 0.5 * ||t||_F^2``: the embedding regulariser of BPR models."""
    return sum(0.5 * t.pow(2).sum() for t in tensors)


def info_nce(view1: torch.Tensor, view2: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE between row-aligned views ``[B, d]``: row ``b`` of each is the positive pair.

    ``mean_b -log( exp(cos(v1_b, v2_b)/t) / sum_c exp(cos(v1_b, v2_c)/t) )``
    (as in MGCN's self-supervised term).
    """
    v1 = F.normalize(view1, dim=1) / temperature  # scale [B, d], not the [B, B] logits
    v2 = F.normalize(view2, dim=1)
    logits = v1 @ v2.T
    return F.cross_entropy(logits, torch.arange(len(v1), device=v1.device))
