"""Audit v2: a held-out membership test of the deleted pairs (anchor: MUSE's PrivLeak,
Shi et al. 2024), and the difference attack of Chen et al., CCS 2021 ("When Machine
Unlearning Jeopardizes Privacy").

**Sample** (:func:`audit_sample`, one per forget task, seeded, shared by every model
audited on it). Members: ``D_f`` pairs. Non-members: held-out pairs, which no model
trained on (pairs that are also training pairs are dropped), matched to the regime:

* interaction deletion (and requests): held-out pairs of the users the deletion touches;
* user deletion: the deleted users' own held-out pairs;
* item deletion: held-out pairs of the target items.

Which held-out split (``split``): *validation* on development tasks, which is what
tuning reads, so selection never reads the test split; *test* on report tasks, so the
reported audit never scores pairs a method could have read (methods may read
validation pairs: TRU's ``p*`` is set from the touched users' validation pairs, which in
interaction deletion are exactly a validation audit's non-members). ``split`` is
recorded as ``audit_split``. The two sets are balanced and matched on item popularity
where the pool allows: pairs are binned at the deciles of their item's training popularity (in D) and
each bin keeps as many members as non-members, ``min`` of the two; at most ``size``
pairs per side (scaled down bin by bin). ``audit_pairs`` = pairs per side.

**Features** of a pair ``(u, i)`` under a model (:func:`rank_features`, ``[n, 3]``):
``s(u,i)``; ``z = (s - mean_c s(u,c)) / std_c s(u,c)`` and the rank percentile
``p = 1 - #{c: s(u,c) > s(u,i)} / (n_u - 1)`` (1 = top) over u's candidates ``c`` (items
outside u's retained training set ``D_r``, where held-out and deleted items both are).

**Attack** (:func:`attack`): standardised logistic regression (scikit-learn, L-BFGS,
C = 1), its membership probabilities out of fold from a stratified 5-fold
cross-validation on the sample itself. Fit on the audited model's own features, it
learns either direction, so burying ``D_f`` below every held-out pair is as visible as
keeping it on top: ``mia_auc >= 0.5`` up to noise, and about 0.5 for a retrained model.

**PrivLeak** (:func:`privleak`): ``(mia_auc - retrain_mia_auc) / retrain_mia_auc``;
0 is the goal. Because the attack learns either direction, a model that still ranks
``D_f`` high *and* one that buries it below the held-out pairs are both more separable
than the retrained model: PrivLeak above 0 means "distinguishable from retraining", in
either direction, and the direction is read from ``forget_gap@20`` (or the rank
percentiles). Below 0 means less distinguishable than the retrained model itself
(within noise, as the second retrain shows). MUSE reads a negative PrivLeak as
over-unlearning; that reading needs a one-way attack, which v1 had and which rewarded
burying ``D_f``. Its 95% interval is
the percentile interval of :data:`BOOTSTRAP` paired bootstrap draws: members and
non-members are resampled (each set with replacement, so it stays balanced) and both
AUCs are recomputed from the same out-of-fold probabilities on the same draw.

**Difference attack** (:func:`difference_auc`): the adversary holds the original and
the unlearned model; features = ``[f_original, f_unlearned, f_unlearned - f_original]``
(9), the same cross-validated classifier. Recorded for the method (``mia_diff_auc``)
and for the retrained model in its place (``retrain_mia_diff_auc``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from backbones.blocks.csr import dense_rows

AUDIT_SIZE = 2000  # pairs per side (members, non-members) at most: the default everywhere
FOLDS = 5
BOOTSTRAP = 1000
POPULARITY_BINS = 10
PAIR_CHUNK = 256  # pairs per block of the rank comparison in rank_features


@dataclass(frozen=True)
class AuditSample:
    """The pairs of one audit, ``[2n, 2]``, and their labels ``[2n]`` (1 = member, ``D_f``)."""

    pairs: torch.Tensor
    labels: np.ndarray
    seed: int
    split: str = "valid"  # the held-out split of the non-members

    @property
    def size(self) -> int:
        """Pairs per side."""
        return int(self.labels.sum())


def non_member_pool(held: np.ndarray, train: np.ndarray, task) -> np.ndarray:
    """Held-out pairs matched to the regime, less any that are training pairs (module docstring)."""
    keys = held[:, 0].astype(np.int64) * task.n_items + held[:, 1]
    held = held[~np.isin(keys, train[:, 0].astype(np.int64) * task.n_items + train[:, 1])]
    if task.regime == "item":
        return held[np.isin(held[:, 1], task.items)]
    return held[np.isin(held[:, 0], task.users)]  # interaction, request: touched users; user: deleted users


def audit_sample(dataset, task, size: int = AUDIT_SIZE, seed: int = 0, split: str = "valid") -> AuditSample:
    """Balanced, popularity-matched members and non-members of ``task`` with non-members
    from the held-out ``split`` (``valid`` or ``test``; module docstring)."""
    if split not in ("valid", "test"):
        raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
    rng = np.random.default_rng(seed)
    members = task.forget
    pool = non_member_pool(dataset.valid if split == "valid" else dataset.test, dataset.train, task)
    popularity = np.bincount(dataset.train[:, 1], minlength=dataset.n_items)
    pop_m, pop_n = popularity[members[:, 1]], popularity[pool[:, 1]]
    edges = np.unique(np.quantile(np.concatenate([pop_m, pop_n]), np.linspace(0, 1, POPULARITY_BINS + 1)[1:-1]))
    bin_m, bin_n = np.searchsorted(edges, pop_m, side="right"), np.searchsorted(edges, pop_n, side="right")
    take = np.array([min((bin_m == b).sum(), (bin_n == b).sum()) for b in range(len(edges) + 1)])
    if take.sum() > size:
        take = np.floor(take * size / take.sum()).astype(int)
    chosen_m, chosen_n = [], []
    for b, k in enumerate(take):
        chosen_m.append(rng.permutation(np.flatnonzero(bin_m == b))[:k])
        chosen_n.append(rng.permutation(np.flatnonzero(bin_n == b))[:k])
    m, n = members[np.concatenate(chosen_m)], pool[np.concatenate(chosen_n)]
    pairs = torch.from_numpy(np.concatenate([m, n]).astype(np.int64))
    labels = np.concatenate([np.ones(len(m), dtype=np.int64), np.zeros(len(n), dtype=np.int64)])
    return AuditSample(pairs, labels, seed, split)


def rank_features(users: torch.Tensor, items: torch.Tensor, pairs: torch.Tensor, exclude: torch.Tensor,
                  chunk: int = 512) -> np.ndarray:
    """``[n, 3]`` features ``(s, z, p)`` of ``pairs`` ``[n, 2]`` from final embeddings
    ``[U, d]``, ``[I, d]``; ``exclude``: boolean CSR ``[U, I]`` of retained training items.
    Users are scored ``chunk`` at a time (``[chunk, I]``) and their pairs compared
    :data:`PAIR_CHUNK` at a time, so memory does not grow with the users or the pairs."""
    out = np.empty((len(pairs), 3))
    if len(pairs) == 0:
        return out
    unique, inverse = torch.unique(pairs[:, 0], return_inverse=True)
    with torch.no_grad():
        for start in range(0, len(unique), chunk):
            rows = unique[start : start + chunk]
            scores = users[rows.to(users.device)] @ items.T  # [c, I]
            hidden = dense_rows(exclude, rows).to(scores.device)
            n_cand = (~hidden).sum(1).clamp(min=2).double()
            masked = scores.double().masked_fill(hidden, 0.0)
            mean = masked.sum(1) / n_cand
            std = ((masked - mean[:, None]).pow(2).masked_fill(hidden, 0.0).sum(1) / (n_cand - 1)).sqrt().clamp(min=1e-12)
            candidates = scores.masked_fill(hidden, float("-inf"))
            mine = ((inverse >= start) & (inverse < start + len(rows))).nonzero().squeeze(1)
            local = (inverse[mine] - start).to(scores.device)
            s = scores[local, pairs[mine, 1].to(scores.device)]
            above = torch.empty(len(s), dtype=torch.float64, device=scores.device)
            for begin in range(0, len(s), PAIR_CHUNK):  # [PAIR_CHUNK, I] at a time: a deleted user's
                part = slice(begin, begin + PAIR_CHUNK)  # hundreds of pairs need not expand at once
                above[part] = (candidates[local[part]] > s[part, None]).sum(1).double()
            p = 1.0 - above / (n_cand[local] - 1)
            z = (s.double() - mean[local]) / std[local]
            out[mine.numpy()] = torch.stack([s.double(), z, p], 1).cpu().numpy()
    return out


@dataclass(frozen=True)
class Audit:
    """One model's audit: its features ``[2n, 3]``, out-of-fold membership probabilities
    ``[2n]`` and their AUC."""

    features: np.ndarray
    scores: np.ndarray
    auc: float

    def bootstrap(self, sample: "AuditSample") -> np.ndarray:
        """This audit's AUC on each bootstrap draw of ``sample`` (computed once: the
        retrained model's serves every job of its task)."""
        if "_draws" not in self.__dict__:
            object.__setattr__(self, "_draws", bootstrap_aucs([self.scores], sample.labels, seed=sample.seed)[0])
        return self.__dict__["_draws"]


def _cross_validated(x: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500))
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    return cross_val_predict(classifier, x, labels, cv=folds, method="predict_proba")[:, 1]


def attack(features: np.ndarray, sample: AuditSample) -> Audit:
    """The cross-validated attack on one model's ``features`` of ``sample``."""
    if sample.size < FOLDS:
        return Audit(features, np.full(len(features), np.nan), float("nan"))
    scores = _cross_validated(features, sample.labels, sample.seed)
    return Audit(features, scores, float(roc_auc_score(sample.labels, scores)))


def difference_auc(original: Audit, other: Audit, sample: AuditSample) -> float:
    """AUC of the difference attack with the original and ``other`` model's features."""
    if sample.size < FOLDS:
        return float("nan")
    x = np.concatenate([original.features, other.features, other.features - original.features], 1)
    return float(roc_auc_score(sample.labels, _cross_validated(x, sample.labels, sample.seed)))


def weighted_aucs(positive: np.ndarray, negative: np.ndarray, w_pos: np.ndarray, w_neg: np.ndarray) -> np.ndarray:
    """AUCs ``[draws]`` of ``positive`` ``[p]`` against ``negative`` ``[q]`` scores where
    each score counts as often as its weight (``w_pos`` ``[draws, p]``, ``w_neg``
    ``[draws, q]``): ``sum_ij w_i w_j ([s_i > s_j] + [s_i = s_j] / 2) / (sum w_i sum w_j)``.
    Without sorting per draw: the negatives are sorted once and each positive's position
    among them (below / at most) indexes the cumulative negative weights."""
    order = np.argsort(negative, kind="stable")
    ordered, w_neg = negative[order], w_neg[:, order]
    cumulative = np.concatenate([np.zeros((len(w_neg), 1), w_neg.dtype), np.cumsum(w_neg, axis=1)], axis=1)
    left = np.searchsorted(ordered, positive, side="left")
    right = np.searchsorted(ordered, positive, side="right")
    credit = cumulative[:, left]  # weight of the negatives scored below s_i
    if (right > left).any():  # ties count half
        credit = credit + (cumulative[:, right] - credit) / 2
    return (w_pos * credit).sum(1, dtype=np.float64) / (w_pos.sum(1, dtype=np.float64) * w_neg.sum(1, dtype=np.float64))


def bootstrap_weights(n: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``[draws, n]`` multiplicities of ``n`` items resampled with replacement, per draw."""
    picks = rng.integers(0, n, (draws, n)) + n * np.arange(draws)[:, None]
    return np.bincount(picks.ravel(), minlength=draws * n).reshape(draws, n).astype(np.float32)


def bootstrap_aucs(scores: list[np.ndarray], labels: np.ndarray, draws: int = BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """``[len(scores), draws]`` AUCs of each score vector on the same paired bootstrap
    draws: members and non-members resampled separately, with replacement (a draw is a
    weight per pair, :func:`bootstrap_weights`; the AUCs :func:`weighted_aucs`). The same
    ``seed`` gives the same draws, so two calls on one sample are paired."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    w_pos, w_neg = bootstrap_weights(len(pos), draws, rng), bootstrap_weights(len(neg), draws, rng)
    return np.stack([weighted_aucs(s[pos], s[neg], w_pos, w_neg) for s in scores])


def privleak(audit: Audit, retrain: Audit, sample: AuditSample) -> tuple[float, float, float]:
    """``(privleak, low, high)``: ``(auc - retrain_auc) / retrain_auc`` and its paired
    bootstrap 95% interval (module docstring)."""
    if np.isnan(audit.auc) or np.isnan(retrain.auc):
        return (float("nan"),) * 3
    value = (audit.auc - retrain.auc) / retrain.auc
    a, r = bootstrap_aucs([audit.scores], sample.labels, seed=sample.seed)[0], retrain.bootstrap(sample)
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = np.where(r > 0, (a - r) / r, np.nan)  # a draw whose retrain AUC is 0 has no ratio
    return float(value), float(np.nanquantile(draws, 0.025)), float(np.nanquantile(draws, 0.975))
