"""Fairness of unlearning across active and inactive users (CURE4Rec's fourth aspect;
Chen et al., "CURE4Rec: A Benchmark for Recommendation Unlearning with Deeper
Influence", NeurIPS 2024 Datasets and Benchmarks).

**Groups**, fixed once per dataset on the original training data D: the *active* users
are the ``ceil(0.05 U)`` users with the most training pairs (ties: the lower user id
first), the *inactive* users are all the others. Unlike CURE4Rec, the groups are not
redefined after deletion (a deleted interaction does not move its user between groups,
so every model of a task is judged on the same two sets) and nothing is chosen on test
data.

**Figures** of one model, with the truth and exclusions of ``retain_test_ndcg@20``
(retained users, their retained training items excluded, in item deletion the target
items' pairs not truth):

* ``retain_test_ndcg@20_active`` and ``retain_test_ndcg@20_inactive``: test NDCG@20
  averaged over the retained users of each group who have test pairs, NaN where fewer
  than :data:`MIN_GROUP` such users remain (user deletion with ``core`` selection removes
  the most active users first: at 5% of ml100k about one active user is left), so a
  figure never rests on a handful of users; ``fairness_active_users``: how many there are;
* ``fairness_gap@20 = active - inactive`` (signed: above 0, active users are served better);
* in a method's record, ``fairness_gap_vs_retrain@20 = fairness_gap@20 -
  retrain_fairness_gap@20``: how much the method moved the gap away from where retraining
  puts it (0: as fair as retraining; the sign says towards which group).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from backbones.blocks.csr import pair_mask
from harness.protocol.evaluation import metrics_from_scores

ACTIVE_SHARE = 0.05
MIN_GROUP = 20  # retained users with test pairs a group needs for its figure
FIELDS = ("retain_test_ndcg@20_active", "retain_test_ndcg@20_inactive", "fairness_gap@20", "fairness_active_users")


def active_users(train: np.ndarray, n_users: int, share: float = ACTIVE_SHARE) -> torch.Tensor:
    """Boolean ``[n_users]``: the ``ceil(share * n_users)`` users with the most pairs in
    ``train`` ``[n, 2]`` (ties: the lower user id first)."""
    counts = np.bincount(train[:, 0], minlength=n_users)
    order = np.lexsort((np.arange(n_users), -counts))  # most pairs first, then the lower id
    active = torch.zeros(n_users, dtype=torch.bool)
    active[torch.from_numpy(order[: math.ceil(share * n_users)])] = True
    return active


def group_figures(score, exclude: torch.Tensor, test: torch.Tensor, active: torch.Tensor,
                  n_items: int, min_group: int = MIN_GROUP) -> dict[str, float]:
    """The :data:`FIELDS` of a model whose rows ``score`` gives (as
    :func:`harness.protocol.evaluation.metrics_from_scores` takes it), with retained test
    pairs ``test`` ``[n, 2]`` as the truth and ``exclude`` the retained training items."""
    n_users = len(active)
    out = {}
    for name, members in (("active", active), ("inactive", ~active)):
        mine = test[members[test[:, 0]]]
        users = len(torch.unique(mine[:, 0]))
        value = float("nan")
        if users >= min_group:
            value = metrics_from_scores(score, exclude, pair_mask(mine, n_users, n_items), ks=(20,))["ndcg@20"]
        out[f"retain_test_ndcg@20_{name}"] = value
        if name == "active":
            out["fairness_active_users"] = float(users)
    out["fairness_gap@20"] = out["retain_test_ndcg@20_active"] - out["retain_test_ndcg@20_inactive"]
    return out
