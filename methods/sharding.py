"""Partitions of the training pairs into disjoint shards, and the model that aggregates
one backbone per shard: the shared parts of exact partitioned unlearning (SISA, RecEraser).

A :class:`Partition` assigns every training pair to one of ``K`` shards through a unit:

* ``user``: all pairs of a user go to the user's shard (SISA's default for
  recommendation, CURE4Rec; RecEraser's UBP);
* ``item``: all pairs of an item go to the item's shard (RecEraser's IBP);
* ``interaction``: each pair has its own shard (RecEraser's InBP; SISA by interactions).

Units are assigned once, on the original training data ``D``, and never move: after a
deletion, shard ``k`` of ``D_r`` is ``D_r`` restricted to shard ``k``. So a shard no
deleted pair belongs to holds exactly the pairs it trained on, and keeping its model is
exact; an *affected* shard (one holding a pair of ``D_f``) is retrained from scratch on
what it keeps (Bourtoule et al., "Machine Unlearning", IEEE S&P 2021).

:class:`ShardEnsemble` is a :class:`backbones.base.Backbone` over ``K`` trained shard
models. Shard ``k`` propagates over the given graph restricted to its shard's pairs
(``G ∩ S_k``), giving ``(U_k [U, d_k], I_k [I, d_k])``. Its scores are

* ``mean``: ``s(u, i) = (1/K) sum_k U_k[u] . I_k[i]``, returned exactly as the
  concatenations ``U = [U_1 .. U_K] / sqrt(K)``, ``I = [I_1 .. I_K] / sqrt(K)``
  (SISA's averaged prediction);
* ``own`` (user unit only): ``s(u, i) = U_{k(u)}[u] . I_{k(u)}[i]``, the user's own
  shard: ``U`` holds ``U_{k(u)}[u]`` in block ``k(u)`` and zeros elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from backbones.base import Backbone, ParamSpec
from backbones.blocks.graph import UserItemGraph
from harness.core.errors import UserError
from methods.base import ForgetTask, ShardJob

UNITS = ("user", "item", "interaction")
AGGREGATIONS = ("mean", "own")


@dataclass(frozen=True, eq=False)
class Partition:
    """``K`` disjoint shards of the training pairs, fixed on the original data.

    ``shard_of``: for ``unit`` ``user`` / ``item``, the shard of each user / item
    ``[n_users]`` / ``[n_items]`` (-1 for a unit with no training pair); for
    ``interaction``, the shard of each pair key ``user * n_items + item`` of ``keys``
    (sorted, ``[n_pairs]``)."""

    unit: str
    n_shards: int
    shard_of: np.ndarray
    n_items: int
    keys: np.ndarray | None = None

    def shards(self, pairs: np.ndarray) -> np.ndarray:
        """The shard of each of ``pairs`` ``[n, 2]`` (pairs of ``D`` only), ``[n]``."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        if self.unit == "user":
            out = self.shard_of[pairs[:, 0]]
        elif self.unit == "item":
            out = self.shard_of[pairs[:, 1]]
        else:
            keys = pairs[:, 0] * self.n_items + pairs[:, 1]
            at = np.searchsorted(self.keys, keys).clip(max=len(self.keys) - 1)
            out = np.where(self.keys[at] == keys, self.shard_of[at], -1)
        if (out < 0).any():
            u, i = pairs[np.flatnonzero(out < 0)[0]]
            raise ValueError(f"pair ({u}, {i}) is not a pair the partition was made on")
        return out

    def split(self, pairs: np.ndarray) -> list[np.ndarray]:
        """``pairs`` cut into the ``K`` shards (row order kept), each ``[n_k, 2]``."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        shard = self.shards(pairs)
        return [np.ascontiguousarray(pairs[shard == k]) for k in range(self.n_shards)]

    def affected(self, forget: np.ndarray) -> list[int]:
        """The shards holding at least one pair of ``forget`` (sorted)."""
        return sorted(set(self.shards(forget).tolist())) if len(forget) else []

    def sizes(self, pairs: np.ndarray) -> list[int]:
        return [len(s) for s in self.split(pairs)]

    def restricted(self, pairs: np.ndarray) -> "Partition":
        """The partition of ``pairs`` (a subset of the pairs it was made on, ``D_r``): units
        with no pair left lose their shard (-1), and interaction keys of the deleted pairs
        are dropped, so an unlearned model keeps no record of what was deleted."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        if self.unit == "interaction":
            keys = pairs[:, 0] * self.n_items + pairs[:, 1]
            kept = np.isin(self.keys, keys)
            return Partition(self.unit, self.n_shards, self.shard_of[kept], self.n_items, self.keys[kept])
        present = np.zeros(len(self.shard_of), dtype=bool)
        present[pairs[:, 0 if self.unit == "user" else 1]] = True
        return Partition(self.unit, self.n_shards, np.where(present, self.shard_of, -1), self.n_items)


def random_partition(train: np.ndarray, n_users: int, n_items: int, n_shards: int, unit: str = "user",
                     seed: int = 0) -> Partition:
    """Units shuffled by ``seed`` and dealt round-robin into ``n_shards`` shards, so shard
    sizes in units differ by at most one (SISA: uniform random shards)."""
    if unit not in UNITS:
        raise ValueError(f"unit '{unit}': unknown (valid: {', '.join(UNITS)})")
    train = np.asarray(train, dtype=np.int64).reshape(-1, 2)
    rng = np.random.default_rng(seed)
    if unit == "interaction":
        keys = np.unique(train[:, 0] * n_items + train[:, 1])
        shard_of = np.empty(len(keys), dtype=np.int64)
        shard_of[rng.permutation(len(keys))] = np.arange(len(keys)) % n_shards
        _check_count(n_shards, len(keys), unit)
        return Partition(unit, n_shards, shard_of, n_items, keys)
    column, size = (0, n_users) if unit == "user" else (1, n_items)
    present = np.unique(train[:, column])
    _check_count(n_shards, len(present), unit)
    shard_of = np.full(size, -1, dtype=np.int64)
    shard_of[present[rng.permutation(len(present))]] = np.arange(len(present)) % n_shards
    return Partition(unit, n_shards, shard_of, n_items)


def check_unit(method: str, unit: str, valid: tuple[str, ...]) -> None:
    """A method's ``unit`` hyperparameter is one of ``valid``, else a :class:`UserError` naming it."""
    if unit not in valid:
        raise UserError(f"method '{method}': hyperparameter 'unit'={unit!r}: valid: {', '.join(valid)}")


def _check_count(n_shards: int, units: int, unit: str) -> None:
    if not 1 <= n_shards <= units:
        raise ValueError(f"n_shards {n_shards}: must be between 1 and the {units} {unit}s with training pairs")


class ShardEnsemble(Backbone):
    """``K`` shard models aggregated by ``mean`` or ``own`` (module docstring). Not trained
    as a whole: each shard model is trained on its shard alone."""

    name = "shard-ensemble"

    def __init__(self, shards: list[Backbone], partition: Partition, aggregation: str = "mean"):
        first = shards[0]
        super().__init__(first.n_users, first.n_items, {})
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation '{aggregation}': unknown (valid: {', '.join(AGGREGATIONS)})")
        if aggregation == "own" and partition.unit != "user":
            raise ValueError("aggregation 'own' needs shards by user")
        if len(shards) != partition.n_shards:
            raise ValueError(f"{len(shards)} shard models for {partition.n_shards} shards")
        self.shard_models = nn.ModuleList(shards)
        self.partition, self.aggregation = partition, aggregation
        self._graphs: tuple | None = None  # (graph, its shard subgraphs): the last graph seen

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_graphs": None}  # copies and pickles drop the subgraph cache

    def shard_graphs(self, graph: UserItemGraph) -> list[UserItemGraph]:
        """``graph`` restricted to each shard's pairs (kept for the last graph seen, so the
        subgraphs' normalised matrices are built once)."""
        if self._graphs is None or self._graphs[0] is not graph:
            parts = self.partition.split(graph.edges.cpu().numpy())
            self._graphs = (graph, [UserItemGraph(torch.from_numpy(p), graph.n_users, graph.n_items) for p in parts])
        return self._graphs[1]

    def forward(self, graph: UserItemGraph) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = [model(g) for model, g in zip(self.shard_models, self.shard_graphs(graph))]
        users = [u for u, _ in outputs]
        items = torch.cat([i for _, i in outputs], dim=1)
        if self.aggregation == "mean":
            scale = 1.0 / math.sqrt(len(outputs))
            return torch.cat(users, dim=1) * scale, items * scale
        own = torch.from_numpy(self.partition.shard_of).to(items.device)
        return torch.cat([u * (own == k).unsqueeze(1).to(u.dtype) for k, u in enumerate(users)], dim=1), items

    def loss(self, batch):
        raise NotImplementedError("a shard ensemble is not trained as a whole: each shard model trains on its shard")

    def parameter_specs(self) -> list[ParamSpec]:
        return [ParamSpec(f"shard_models.{k}.{spec.name}", spec.branch, spec.rows, spec.produces)
                for k, model in enumerate(self.shard_models) for spec in model.parameter_specs()]


# ------------------------------------------------------------------ balanced partitions
def balanced_assignment(distance: np.ndarray, capacity: int) -> np.ndarray:
    """RecEraser's greedy balanced assignment of ``N`` points to ``K`` shards: every
    (point, shard) entry of ``distance [N, K]`` taken in ascending distance (ties: point,
    then shard); a point goes to the shard of its first entry whose shard still holds
    fewer than ``capacity`` points. Returns the shard of each point ``[N]``.

    The same result as walking the ``N * K`` sorted entries one by one (their
    ``data_partition.py``), computed in at most ``K + 1`` vectorised rounds: in a round,
    with the full shards fixed, each unassigned point's first remaining entry is accepted
    in order until the first moment a shard fills; the walk resumes after that entry."""
    n, k = distance.shape
    if capacity * k < n:
        raise ValueError(f"capacity {capacity} x {k} shards cannot hold {n} points")
    order = np.lexsort((np.tile(np.arange(k), n), np.repeat(np.arange(n), k), distance.ravel()))
    points, shards = order // k, order % k
    shard_of = np.full(n, -1, dtype=np.int64)
    counts = np.zeros(k, dtype=np.int64)
    start = 0
    while (shard_of < 0).any():
        open_ = (counts < capacity)[shards[start:]] & (shard_of[points[start:]] < 0)
        candidates = np.flatnonzero(open_) + start
        _, first = np.unique(points[candidates], return_index=True)
        first = np.sort(candidates[first])  # each unassigned point's first open entry, in walk order
        s = shards[first]
        rank = np.zeros(len(first), dtype=np.int64)  # how many earlier firsts share the shard
        for shard in np.unique(s):
            where = np.flatnonzero(s == shard)
            rank[where] = np.arange(len(where))
        fills = np.flatnonzero(counts[s] + rank + 1 == capacity)
        last = first[fills[0]] if len(fills) else first[-1]
        accepted = first[first <= last]
        shard_of[points[accepted]] = shards[accepted]
        counts += np.bincount(shards[accepted], minlength=k)
        start = last + 1
    return shard_of


def balanced_kmeans(user_emb: np.ndarray, item_emb: np.ndarray, train: np.ndarray, n_shards: int, unit: str,
                    iterations: int = 50, capacity_factor: float = 1.2, seed: int = 0) -> Partition:
    """RecEraser's balanced partition (Chen et al., "Recommendation Unlearning", WWW 2022;
    code ``chenchongthu/Recommendation-Unlearning``, ``utility/data_partition.py``) of the
    units with training pairs, on pretrained embeddings ``user_emb [U, d]``, ``item_emb [I, d]``.

    * ``user`` (UBP) / ``item`` (IBP): points are the units' embeddings; the distance to a
      centroid is the squared Euclidean ``||e - c_k||^2``;
    * ``interaction`` (InBP): a point is a pair with the centroid ``(c^u_k, c^i_k)``; its
      distance is ``||e_u - c^u_k||^2 * ||e_i - c^i_k||^2`` (their product, as their code
      scores it).

    Centroids start at ``n_shards`` random points (seeded); each of ``iterations`` rounds
    assigns by :func:`balanced_assignment` with capacity ``capacity_factor * N / K`` and
    moves each centroid to the mean of its points (a cluster left empty keeps its centroid).

    Where this differs from the official code, on purpose: their centroid update is
    ``np.mean`` over a list of vectors with no axis, which collapses every centroid to one
    number from the second round on; here it is the mean vector (``axis = 0``). Their code
    has no item-based partition (the paper defines it); here it mirrors the user-based
    one. Their embeddings come from a separately trained WMF; the harness passes the
    original model's embeddings (:mod:`methods.receraser`)."""
    if unit not in UNITS:
        raise ValueError(f"unit '{unit}': unknown (valid: {', '.join(UNITS)})")
    train = np.asarray(train, dtype=np.int64).reshape(-1, 2)
    n_items = len(item_emb)
    rng = np.random.default_rng(seed)
    if unit == "interaction":
        keys, first = np.unique(train[:, 0] * n_items + train[:, 1], return_index=True)
        pairs = train[first]
        _check_count(n_shards, len(pairs), unit)
        capacity = int(math.ceil(capacity_factor * len(pairs) / n_shards))
        start = rng.choice(len(pairs), n_shards, replace=False)
        cu, ci = user_emb[pairs[start, 0]], item_emb[pairs[start, 1]]
        for _ in range(iterations):
            du, di = _squared_distances(user_emb, cu), _squared_distances(item_emb, ci)
            shard_of = balanced_assignment(du[pairs[:, 0]] * di[pairs[:, 1]], capacity)
            cu = _means(user_emb[pairs[:, 0]], shard_of, cu)
            ci = _means(item_emb[pairs[:, 1]], shard_of, ci)
        return Partition(unit, n_shards, shard_of, n_items, keys)
    emb, column = (user_emb, 0) if unit == "user" else (item_emb, 1)
    present = np.unique(train[:, column])
    _check_count(n_shards, len(present), unit)
    points = emb[present]
    capacity = int(math.ceil(capacity_factor * len(points) / n_shards))
    centroids = points[rng.choice(len(points), n_shards, replace=False)]
    for _ in range(iterations):
        assigned = balanced_assignment(_squared_distances(points, centroids), capacity)
        centroids = _means(points, assigned, centroids)
    shard_of = np.full(len(emb), -1, dtype=np.int64)
    shard_of[present] = assigned
    return Partition(unit, n_shards, shard_of, n_items)


def _means(points: np.ndarray, assigned: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Each cluster's mean point ``[K, d]`` (the mean vector, ``axis = 0``); a cluster left
    empty keeps its previous centroid."""
    return np.stack([points[assigned == k].mean(0) if (assigned == k).any() else previous[k]
                     for k in range(len(previous))])


def _squared_distances(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """``||p - c||^2`` of each point and centroid, ``[N, K]`` (float64)."""
    p, c = points.astype(np.float64), centroids.astype(np.float64)
    return ((p * p).sum(1)[:, None] - 2 * p @ c.T + (c * c).sum(1)[None, :]).clip(min=0)


# ------------------------------------------------------------------ shard training jobs
#: shard ``k``'s initialisation seed is ``seed + SHARD_SEED_OFFSET * (k + 1)`` (apart from
#: the second retrain's ``seed + 1000``)
SHARD_SEED_OFFSET = 10_000


def shard_validation(partition: Partition, shard: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The validation pairs that early-stop a shard's model: those of the users it holds
    pairs of (for item shards, of its items too). They depend on the shard's pairs alone:
    a user deleted from ``D`` has no pair in an untouched shard, so its validation pairs
    never guided that shard, and the kept model is exactly what retraining it gives."""
    keep = np.isin(valid[:, 0], np.unique(shard[:, 0]))
    if partition.unit == "item":
        keep &= np.isin(valid[:, 1], np.unique(shard[:, 1]))
    return np.ascontiguousarray(valid[keep])


def shard_jobs(partition: Partition, pairs: np.ndarray, valid: np.ndarray, seed: int,
               shards: list[int] | None = None) -> list[ShardJob]:
    """One :class:`methods.base.ShardJob` per shard of ``shards`` (default: all): shard
    ``k`` of ``pairs`` in canonical order (:func:`canonical`: training shuffles by row, so
    an untouched shard of ``D_r`` must be the very rows it had in ``D``), its validation
    pairs (:func:`shard_validation`) and its seed."""
    parts = partition.split(canonical(pairs))
    chosen = range(partition.n_shards) if shards is None else shards
    return [ShardJob(parts[k], shard_validation(partition, parts[k], valid), seed + SHARD_SEED_OFFSET * (k + 1))
            for k in chosen]


def canonical(pairs: np.ndarray) -> np.ndarray:
    """``pairs [n, 2]`` sorted by user, then item."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return np.ascontiguousarray(pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))])


def training_pairs(task: ForgetTask) -> np.ndarray:
    """``D = D_r + D_f`` (+ the pairs earlier requests deleted) in canonical order, the same
    for every task of a dataset: a partitioned original never depends on which pairs are
    forgotten."""
    return canonical(np.concatenate([task.retain, task.forget, task.earlier]))

