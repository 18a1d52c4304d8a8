"""The direction of every forget term: descent never raises a forgotten pair's score.

Protocol v2's first fix: TRU's fused forget loss had the forward BPR sign on its first
term, so every D_f pair ranked below ``p*`` (gate near 0) was trained back up. TRU v3's
gate is one-sided: no force at all on a pair at or below its target (gamma = 1).
"""

import copy

import pytest
import torch

from backbones.base import eval_embeddings
from harness.data.regimes import make_task
from harness.data.tiny import tiny_dataset
from harness.protocol.models import build_backbone
from harness.protocol.training import TrainConfig, train
from methods import METHODS, Budget
from methods import tru as tru_module
from methods.reverse import ReverseUpdate
from methods.tru import TRU, _Run


@pytest.fixture(scope="module")
def trained():
    dataset = tiny_dataset(n_users=40, n_items=50)
    model = build_backbone("mgcn", dataset, 0)
    train(model, torch.from_numpy(dataset.train), torch.from_numpy(dataset.valid),
          TrainConfig.for_backbone(type(model), max_epochs=4, batch_size=64), 0, progress=False)
    return dataset, model


def _forget_scores(model, task) -> torch.Tensor:
    users, items = eval_embeddings(model, task.retain_graph())
    pairs = torch.from_numpy(task.forget)
    return (users[pairs[:, 0]] * items[pairs[:, 1]]).sum(1)


@pytest.mark.parametrize("gamma", [0.25, 0.5, 1.0])
def test_tru_forget_term_never_raises_a_pair_and_is_one_sided(trained, monkeypatch, gamma):
    """``d l_f / d s(u,i) >= 0`` for every D_f pair, above or below its target; at gamma = 1
    it is exactly 0 at or below the target and positive above it."""
    dataset, model = trained
    task = make_task(dataset, "interaction", "random", 0.2, 0)
    method = TRU(gate_strength=gamma)
    graph = task.retain_graph()
    pairs = torch.from_numpy(task.forget)
    method.run = run = _Run(graph, graph.user_items_csr(), pairs)
    p = method._percentiles(model, pairs)
    run.target = torch.full_like(p, float(p.median()))  # half the pairs above their target, half at or below
    run.keys, run.key_order = torch.sort(pairs[:, 0] * task.n_items + pairs[:, 1])
    method._refresh(model)
    below = p <= run.target
    assert below.any() and (~below).any()

    captured = {}
    plain = tru_module.pair_scores

    def keep_pos(users, items, batch):
        pos, neg = plain(users, items, batch)
        pos.retain_grad()
        captured["pos"] = pos
        return pos, neg

    monkeypatch.setattr(tru_module, "pair_scores", keep_pos)
    users, items = eval_embeddings(model, graph)
    users, items = users.clone().requires_grad_(True), items.clone().requires_grad_(True)
    negatives = torch.randint(task.n_items, (len(pairs),), generator=torch.Generator().manual_seed(0))
    batch = type("B", (), {"users": pairs[:, 0], "pos_items": pairs[:, 1], "neg_items": negatives})()
    method.forget_loss(model, users, items, batch).backward()
    grad = captured["pos"].grad
    assert (grad >= 0).all(), f"{int((grad < 0).sum())} of {len(grad)} D_f pairs would be raised"
    assert (grad[~below] > 0).all()
    if gamma == 1.0:
        assert (grad[below] == 0).all(), "a pair at or below its target still feels a force"
    else:
        assert (grad[below] > 0).all()


def _without_keep(cls: type[ReverseUpdate]) -> type[ReverseUpdate]:
    return type(f"{cls.__name__}WithoutKeep", (cls,), {"keep": False})


FAMILY = [("neggrad", {}), ("neggrad_plus", {}), ("mmrecun", {}),
          # TRU's stopping rule off (on tiny data its target can be met before any step) and no
          # re-drawn start (it lowers D_f scores by itself, whatever the sign of the forget term)
          ("tru", {"stop_tolerance": 0.0, "redraw_start": False}),
          ("tru", {"gate_strength": 0.25, "stop_tolerance": 0.0, "redraw_start": False}),
          ("tru", {"gate_strength": 0.5, "isolation_coverage": 0.3, "stop_tolerance": 0.0, "redraw_start": False}),
          ("tru-no-gate", {}), ("tru-no-scale", {"stop_tolerance": 0.0, "redraw_start": False}),
          ("tru-no-isolation", {"stop_tolerance": 0.0, "redraw_start": False}),
          ("tru-v2", {}), ("tru-v2", {"gate_strength": 0.02, "gate_margin": -1.0})]  # raised D_f before protocol v2


@pytest.mark.parametrize("regime", ["interaction", "user", "item"])
@pytest.mark.parametrize("name,params", FAMILY, ids=[f"{n}{p or ''}" for n, p in FAMILY])
def test_one_forget_step_never_raises_the_mean_forget_score(trained, regime, name, params):
    """The whole reverse-update family (finetune has no forget term): one step on one
    batch of all D_f pairs, the keep term off, lowers their mean score."""
    dataset, model = trained
    task = make_task(dataset, regime, "random", 0.2, 0)
    method = _without_keep(METHODS.get(name))(lr=1e-3, **params)
    before = float(_forget_scores(model, task).mean())
    after_model = method.unlearn(copy.deepcopy(model), task, Budget(epochs=1, batch_size=len(task.forget), seed=0))
    assert method.summary()["steps"] == 1
    after = float(_forget_scores(after_model, task).mean())
    assert after < before, f"{name} {params}: mean D_f score {before:.5f} -> {after:.5f}"
