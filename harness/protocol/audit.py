"""Black-box membership-inference audit from scores and ranks, and the AUC statistic.

Features of a pair ``(u, i)`` under a model (all from scores, no parameters):
``s(u,i)``; ``z(u,i) = (s(u,i) - mean_j s(u,j)) / std_j s(u,j)`` over all items; and the
rank percentile ``p(u,i) = 1 - rank/(I-1)`` among all items (1 = top).

Attack: logistic regression on the standardised features, fit by L-BFGS, trained on
shadow pairs of the audited model: members = a sample of D_r training pairs;
non-members = held-out validation/test pairs of retained users and unobserved pairs,
half each. Reported: the AUC of the attack's membership probability on D_f pairs
against *fresh* non-members (not used for fitting). The same seeded samples are used for
every model audited on one task, so ``original``, ``retrain`` and a method compare.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from harness.core.seeding import generator

AUDIT_SIZE = 2000  # pairs per audit set (members, non-members, targets, fresh): the default everywhere


def auc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """Area under the ROC curve = P(score_pos > score_neg) + 0.5 P(tie) (Mann-Whitney)."""
    scores = torch.cat([positive, negative]).double()
    order = scores.argsort()
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.double)
    # average the ranks of ties
    unique, inverse = torch.unique(scores, return_inverse=True)
    sums = torch.zeros(len(unique), dtype=torch.double).index_add_(0, inverse, ranks)
    counts = torch.zeros(len(unique), dtype=torch.double).index_add_(0, inverse, torch.ones_like(ranks))
    ranks = (sums / counts)[inverse]
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pair_features(users: torch.Tensor, items: torch.Tensor, pairs: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """``[n, 3]`` features ``(s, z, p)`` of ``pairs`` ``[n, 2]`` from final embeddings."""
    out = torch.empty(len(pairs), 3)
    n_items = items.shape[0]
    for start in range(0, len(pairs), chunk):
        part = pairs[start : start + chunk]
        scores = users[part[:, 0].to(users.device)] @ items.T  # [c, I]
        s = scores.gather(1, part[:, 1:2].to(scores.device)).squeeze(1)
        mean, std = scores.mean(1), scores.std(1).clamp(min=1e-12)
        above = (scores > s.unsqueeze(1)).sum(1).float()
        out[start : start + len(part)] = torch.stack(
            [s, (s - mean) / std, 1.0 - above / max(n_items - 1, 1)], dim=1
        ).cpu()
    return out


@dataclass(frozen=True)
class AuditSample:
    """Seeded pairs of one audit: shadow members / non-members, target D_f, fresh non-members."""

    members: torch.Tensor
    nonmembers: torch.Tensor
    targets: torch.Tensor
    fresh: torch.Tensor


def audit_sample(dataset, task, size: int = AUDIT_SIZE, seed: int = 0) -> AuditSample:
    """Draw the audit pairs for ``task`` (see the module docstring)."""
    gen = generator(seed)
    removed = set(task.removed_users.tolist())
    retain = torch.from_numpy(task.retain)
    held = torch.from_numpy(np.concatenate([dataset.valid, dataset.test]))
    if removed:
        held = held[~torch.isin(held[:, 0], torch.tensor(sorted(removed)))]
    n_target = min(size, len(task.forget))
    known = set(map(tuple, np.concatenate([dataset.train, dataset.valid, dataset.test]).tolist()))
    n_unobserved = size  # half of the 2 * size non-members
    unobserved = []
    while len(unobserved) < n_unobserved:
        u = torch.randint(dataset.n_users, (n_unobserved,), generator=gen)
        i = torch.randint(dataset.n_items, (n_unobserved,), generator=gen)
        for pair in zip(u.tolist(), i.tolist()):
            if pair not in known and pair[0] not in removed and len(unobserved) < n_unobserved:
                unobserved.append(pair)
    unobserved = torch.tensor(unobserved)
    held = held[torch.randperm(len(held), generator=gen)[:size]]
    pool = torch.cat([held, unobserved])
    pool = pool[torch.randperm(len(pool), generator=gen)]
    half = len(pool) // 2
    members = retain[torch.randperm(len(retain), generator=gen)[:half]]
    targets = torch.from_numpy(task.forget)[torch.randperm(len(task.forget), generator=gen)[:n_target]]
    return AuditSample(members, pool[:half], targets, pool[half:])


def membership_auc(users: torch.Tensor, items: torch.Tensor, sample: AuditSample) -> float:
    """Fit the attack on the shadow pairs of this model; AUC of D_f vs fresh non-members."""
    x_member = pair_features(users, items, sample.members)
    x_non = pair_features(users, items, sample.nonmembers)
    x = torch.cat([x_member, x_non]).double()
    y = torch.cat([torch.ones(len(x_member)), torch.zeros(len(x_non))]).double()
    mean, std = x.mean(0), x.std(0).clamp(min=1e-12)
    weights = torch.zeros(x.shape[1] + 1, dtype=torch.double, requires_grad=True)
    optimiser = torch.optim.LBFGS([weights], max_iter=200, line_search_fn="strong_wolfe")

    def logits(features):
        return ((features.double() - mean) / std) @ weights[:-1] + weights[-1]

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits(x), y) + 1e-4 * weights.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        target = logits(pair_features(users, items, sample.targets))
        fresh = logits(pair_features(users, items, sample.fresh))
    return auc(target, fresh)
