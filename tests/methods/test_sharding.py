import math

import numpy as np
import pytest
import torch

from backbones.base import eval_embeddings
from backbones.blocks.graph import UserItemGraph
from harness.data.regimes import make_task
from harness.data.tiny import tiny_dataset
from harness.protocol.models import build_backbone
from methods.sharding import Partition, ShardEnsemble, balanced_assignment, balanced_kmeans, random_partition


@pytest.fixture(scope="module")
def data():
    return tiny_dataset()


@pytest.mark.parametrize("unit", ["user", "item", "interaction"])
def test_shards_are_disjoint_cover_d_and_keep_their_units(data, unit):
    part = random_partition(data.train, data.n_users, data.n_items, 4, unit, seed=3)
    shards = part.split(data.train)
    assert sum(len(s) for s in shards) == len(data.train)
    keys = [set((s[:, 0] * data.n_items + s[:, 1]).tolist()) for s in shards]
    assert all(not (a & b) for i, a in enumerate(keys) for b in keys[i + 1:])
    if unit != "interaction":
        column = 0 if unit == "user" else 1
        owners = [set(s[:, column].tolist()) for s in shards]
        assert all(not (a & b) for i, a in enumerate(owners) for b in owners[i + 1:])  # a unit lives in one shard
    units = {"user": data.n_users, "item": data.n_items, "interaction": len(data.train)}[unit]
    counts = np.bincount(part.shard_of[part.shard_of >= 0], minlength=4)
    assert counts.max() - counts.min() <= 1 and counts.sum() == units  # dealt round-robin
    assert (part.shard_of == random_partition(data.train, data.n_users, data.n_items, 4, unit, seed=3).shard_of).all()


def test_a_deletion_moves_no_pair_and_touches_only_its_shards(data):
    part = random_partition(data.train, data.n_users, data.n_items, 5, "user", seed=0)
    task = make_task(data, "user", "random", 0.1, seed=0)
    before, after = part.split(data.train), part.split(task.retain)
    affected = part.affected(task.forget)
    assert affected == sorted(set(part.shard_of[task.users].tolist()))
    for k in range(5):
        kept = set(map(tuple, after[k].tolist()))
        assert kept <= set(map(tuple, before[k].tolist()))
        assert (kept == set(map(tuple, before[k].tolist()))) == (k not in affected)  # untouched shards are unchanged


def test_a_pair_outside_the_partition_is_an_error():
    part = random_partition(np.array([[0, 0], [1, 1]]), 2, 2, 2, "interaction")
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        part.shards(np.array([[0, 1]]))


def test_the_ensemble_scores_are_the_mean_or_the_users_own_shard(data):
    part = random_partition(data.train, data.n_users, data.n_items, 3, "user", seed=1)
    shards = [build_backbone("lightgcn", data, seed=k) for k in range(3)]
    graph = UserItemGraph(torch.from_numpy(data.train), data.n_users, data.n_items)
    per_shard = [eval_embeddings(m, UserItemGraph(torch.from_numpy(p), data.n_users, data.n_items))
                 for m, p in zip(shards, part.split(data.train))]
    scores = torch.stack([u @ i.T for u, i in per_shard])  # [K, U, I]
    u, i = eval_embeddings(ShardEnsemble(shards, part, "mean"), graph)
    assert torch.allclose(u @ i.T, scores.mean(0), atol=1e-6)
    u, i = eval_embeddings(ShardEnsemble(shards, part, "own"), graph)
    own = torch.from_numpy(part.shard_of)
    expected = scores[own, torch.arange(data.n_users)]  # user u's row of its own shard's scores
    assert torch.allclose(u @ i.T, expected, atol=1e-6)
    assert not torch.allclose(expected, scores.mean(0), atol=1e-3)  # the two aggregations differ here


def test_the_ensemble_propagates_each_shard_over_its_own_pairs_of_the_graph(data):
    part = random_partition(data.train, data.n_users, data.n_items, 2, "interaction", seed=0)
    shards = [build_backbone("lightgcn", data, seed=k) for k in range(2)]
    ensemble = ShardEnsemble(shards, part)
    task = make_task(data, "interaction", "random", 0.2, seed=0)
    graphs = ensemble.shard_graphs(task.retain_graph())
    for g, expected in zip(graphs, part.split(task.retain)):
        assert g.edges.tolist() == expected.tolist()
    with pytest.raises(ValueError, match="by user"):
        ShardEnsemble(shards, part, "own")
    assert isinstance(part, Partition) and len(ensemble.parameter_specs()) == 4


def _walk(distance, capacity):
    """The official walk, entry by entry, in ascending distance."""
    n, k = distance.shape
    shard_of, counts = np.full(n, -1), np.zeros(k, dtype=int)
    for flat in np.lexsort((np.tile(np.arange(k), n), np.repeat(np.arange(n), k), distance.ravel())):
        p, s = divmod(int(flat), k)
        if shard_of[p] < 0 and counts[s] < capacity:
            shard_of[p], counts[s] = s, counts[s] + 1
    return shard_of


def test_balanced_assignment_by_hand_and_against_the_walk():
    # entries in ascending distance: (p0,s0) .1, (p1,s0) .2, (p1,s1) .3, (p2,s1) .4, ...: capacity 2 fills s0 with p0, p1
    distance = np.array([[0.1, 0.9], [0.2, 0.3], [0.8, 0.4]])
    assert balanced_assignment(distance, 2).tolist() == [0, 0, 1]
    # capacity 1: p0 takes s0, so p1 (also nearest s0) goes to its second choice s1
    assert balanced_assignment(np.array([[0.1, 0.9], [0.2, 0.3]]), 1).tolist() == [0, 1]
    rng = np.random.default_rng(0)
    for n, k, cap in ((50, 4, 15), (200, 7, 35), (31, 3, 11)):
        d = rng.random((n, k)) ** 3
        got = balanced_assignment(d, cap)
        assert got.tolist() == _walk(d, cap).tolist() and np.bincount(got).max() <= cap
    with pytest.raises(ValueError, match="cannot hold"):
        balanced_assignment(np.zeros((5, 2)), 2)


@pytest.mark.parametrize("unit", ["user", "item", "interaction"])
def test_balanced_kmeans_separates_planted_clusters_within_capacity(unit):
    rng = np.random.default_rng(1)
    # 3 user and 3 item clusters far apart; user u and item i share cluster u % 3 / i % 3
    centres = np.eye(3) * 10
    users = centres[np.arange(60) % 3] + rng.normal(0, 0.1, (60, 3))
    items = centres[np.arange(45) % 3] + rng.normal(0, 0.1, (45, 3))
    train = np.array([(u, i) for u in range(60) for i in range(45) if u % 3 == i % 3 and rng.random() < 0.3])
    part = balanced_kmeans(users, items, train, 3, unit, iterations=10, seed=0)
    shards = part.split(train)
    assert sum(len(s) for s in shards) == len(train)
    cluster = {"user": lambda s: s[:, 0] % 3, "item": lambda s: s[:, 1] % 3, "interaction": lambda s: s[:, 0] % 3}[unit]
    assert all(len(np.unique(cluster(s))) == 1 for s in shards)  # each shard is one planted cluster
    units = {"user": 60, "item": 45, "interaction": len(train)}[unit]
    assert np.bincount(part.shard_of[part.shard_of >= 0]).max() <= math.ceil(1.2 * units / 3)
