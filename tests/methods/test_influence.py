import copy

import numpy as np
import pytest
import torch

import methods.influence as influence
from backbones.base import eval_embeddings
from harness.data.regimes import make_task
from harness.data.tiny import tiny_dataset
from harness.protocol.conformance_suite import MethodConformance
from harness.protocol.models import build_backbone
from harness.protocol.training import TrainConfig, train
from methods import METHODS, Budget
from methods.newton import Subspace

FAMILY = ["ifru", "scif", "gif"]
#: damping where H + lambda I is positive definite on the tiny data (its pairs' curvature is ~1), and a LiSSA scale above it
TINY = {"ifru": {"damping": 3.0, "scale": 1.0, "hops": 1, "percentile": 40.0, "iterations": 20},
        "scif": {"damping": 3.0, "scale": 1.0, "percentile": 0.0, "iterations": 20},
        "gif": {"damping": 3.0, "lissa_scale": 30.0, "scale": 1.0}}


class TestInfluenceMethods(MethodConformance):
    methods = FAMILY
    backbones = ["mgcn"]  # LightGCN: the built-ins suite (tests/harness/protocol/test_conformance.py)


def test_node_influence_by_hand():
    # users 0, 1; items 0, 1; D = {(0,0), (0,1), (1,1)}; D_f = {(0,0)}
    train_pairs = np.array([[0, 0], [0, 1], [1, 1]])
    forget = np.array([[0, 0]])
    # nodes: u0 u1 i0 i1; degree + 1: 3, 2, 2, 3; deleted counts: 1, 0, 1, 0
    s0 = influence.node_influence(train_pairs, forget, 2, 2, hops=0)
    assert s0 == pytest.approx([1 / 3, 0, 1 / 2, 0])
    # one hop, s(w) = sum over N(w) + w of s0 / d(w): u0 <- u0, i0, i1; u1 <- u1, i1; i0 <- i0, u0; i1 <- i1, u0, u1
    s1 = influence.node_influence(train_pairs, forget, 2, 2, hops=1)
    assert s1 == pytest.approx([(1 / 3 + 1 / 2) / 3, 0, (1 / 2 + 1 / 3) / 2, (1 / 3) / 3])
    assert influence._above(s1, 40.0).tolist() == [0, 2]  # above the 40th percentile of the nonzero scores
    assert influence._above(s1, 0.0).tolist() == [0, 2, 3]


@pytest.fixture(scope="module")
def trained():
    dataset = tiny_dataset(n_users=60, n_items=80, per_user=10)
    model = build_backbone("lightgcn", dataset, 0)
    train(model, torch.from_numpy(dataset.train), torch.from_numpy(dataset.valid),
          TrainConfig.for_backbone(type(model), max_epochs=40, batch_size=64), 0, progress=False)
    return dataset, model


def _scores(model, task, pairs):
    users, items = eval_embeddings(model, task.retain_graph())
    pairs = torch.from_numpy(pairs)
    return (users[pairs[:, 0]] * items[pairs[:, 1]]).sum(1)


@pytest.mark.parametrize("regime", ["interaction", "user"])
@pytest.mark.parametrize("method", FAMILY)
def test_the_newton_step_lowers_deleted_scores_and_its_negation_raises_them(trained, method, regime, monkeypatch):
    dataset, original = trained
    task = make_task(dataset, regime, "random", 0.2, 0)
    before = _scores(original, task, task.forget).mean()
    params = TINY[method]
    unlearned = METHODS.get(method)(**params).unlearn(copy.deepcopy(original), task, Budget(seed=0, batch_size=64))
    assert _scores(unlearned, task, task.forget).mean() < before - 1e-4

    add = Subspace.add_
    monkeypatch.setattr(Subspace, "add_", lambda self, x: add(self, -x))  # the step with the wrong sign
    flipped = METHODS.get(method)(**params).unlearn(copy.deepcopy(original), task, Budget(seed=0, batch_size=64))
    assert _scores(flipped, task, task.forget).mean() > before + 1e-4


def test_each_member_moves_only_its_entries(trained):
    dataset, original = trained
    task = make_task(dataset, "interaction", "random", 0.2, 0)
    moved = {}
    for method in FAMILY:
        instance = METHODS.get(method)(**TINY[method])
        model = instance.unlearn(copy.deepcopy(original), task, Budget(seed=0, batch_size=64))
        changed_users = (model.user_embedding != original.user_embedding).any(1)
        changed_items = (model.item_embedding != original.item_embedding).any(1)
        moved[method] = (changed_users, changed_items, instance.summary())
    users, items = moved["scif"][0].nonzero().squeeze(1), moved["scif"][1].nonzero().squeeze(1)
    assert set(users.tolist()) == set(task.users.tolist()) and set(items.tolist()) == set(task.items.tolist())
    ifru_users, ifru_items, summary = moved["ifru"]
    assert int(ifru_users.sum() + ifru_items.sum()) == summary["nodes"] < dataset.n_users + dataset.n_items
    assert moved["gif"][0].all() and moved["gif"][1].all()  # every parameter


class _FixedNegatives:
    """Negatives as a fixed function of the user, so a test can rebuild the method's losses."""

    def __init__(self, edges, n_items):
        self.n_items = n_items

    def sample(self, users, generator):
        return (users * 7 + 3) % self.n_items


class _Loss(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.loss(batch)


@pytest.mark.parametrize("method", ["scif", "ifru"])
def test_the_step_is_the_damped_newton_step_of_the_retained_loss(method, monkeypatch):
    """unlearn's update against ``(H + lambda I)^{-1} g`` built here from scratch: ``H`` the
    exact Hessian (torch.autograd.functional.hessian) of the summed retained training loss
    on G_r over the pairs incident to the moved nodes, ``g`` the gradient of the deleted
    pairs' summed loss on G plus (IFRU) the graph term over the pairs sharing a user or an
    item with D_f; every sampling cap above the set sizes, one loss chunk each."""
    from backbones.base import Batch
    from backbones.blocks.graph import UserItemGraph

    monkeypatch.setattr(influence, "NegativeSampler", _FixedNegatives)
    dataset = tiny_dataset()
    original = build_backbone("lightgcn", dataset, 0, {"dim": 4})
    train(original, torch.from_numpy(dataset.train), torch.from_numpy(dataset.valid),
          TrainConfig.for_backbone(type(original), max_epochs=20, batch_size=64), 0, progress=False)
    task = make_task(dataset, "interaction", "random", 0.1, 0)
    damping = 3.0
    instance = METHODS.get(method)(damping=damping, iterations=100, scale=1.0, hessian_pairs=65536,
                                   **({"graph_pairs": 65536} if method == "ifru" else {}))
    unlearned = instance.unlearn(copy.deepcopy(original), task, Budget(seed=0, batch_size=100_000))
    space, nodes = instance.subspace(original, task)  # the entries it chose (tested above); nothing is moved
    by_id = {id(p): n for n, p in original.named_parameters()}
    names = [by_id[id(p)] for p in space.params]

    retain, forget = torch.from_numpy(task.retain), torch.from_numpy(task.forget)
    full = UserItemGraph(torch.cat([retain, forget]), task.n_users, task.n_items)
    kept = task.retain_graph()
    users = torch.from_numpy(nodes[nodes < task.n_users])
    items = torch.from_numpy(nodes[nodes >= task.n_users] - task.n_users)
    population = retain[influence.incident(retain, users, items, task.n_users, task.n_items)]
    changed = retain[influence.incident(retain, torch.from_numpy(task.users), torch.from_numpy(task.items),
                                        task.n_users, task.n_items)]
    loss_of = _Loss(original).eval()

    def summed(x, graph, pairs):
        shifted = {f"model.{n}": p.detach() + d for n, p, d in zip(names, space.params, space.unflatten(x))}
        batch = Batch(graph, pairs[:, 0], pairs[:, 1], (pairs[:, 0] * 7 + 3) % task.n_items)
        return len(pairs) * torch.func.functional_call(loss_of, shifted, (batch,))

    def objective(x):
        out = summed(x, full, forget)
        if method == "ifru":  # the graph term: the changed pairs on the old graph minus on G_r
            out = out + summed(x, full, changed) - summed(x, kept, changed)
        return out

    zero = torch.zeros(space.size)
    hessian = torch.autograd.functional.hessian(lambda x: summed(x, kept, population), zero).double()
    g = torch.autograd.functional.jacobian(objective, zero).double()
    expected = torch.linalg.solve(hessian + damping * torch.eye(space.size, dtype=torch.float64), g)
    after = dict(unlearned.named_parameters())
    moved = space.flatten([after[n].detach() - p.detach() for n, p in zip(names, space.params)])
    assert instance.summary()["solver_stopped"] == "converged"
    assert float((moved.double() - expected).norm() / expected.norm()) < 1e-4
