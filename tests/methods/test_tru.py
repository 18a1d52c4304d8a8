import copy
import json

import pytest
import torch
from torch import nn

from backbones.base import Backbone, ParamSpec, propagate
from harness.data.regimes import make_task
from harness.protocol.training import TrainConfig, train
from harness.protocol.models import build_backbone
from methods import METHODS, Budget
from harness.data.tiny import tiny_dataset
from harness.protocol.conformance import check_method

SHARED = {"lr": 1e-3, "lambda_f": 1.0, "max_epochs": 10}  # the family's hyperparameters, the same on both sides
ALL_OFF = {"gate_strength": 0.0, "scale_power": 0.0, "layer_budget": 1.0, "stop_tolerance": 0.0} | SHARED


@pytest.fixture(scope="module")
def trained():
    dataset = tiny_dataset(n_users=40, n_items=50)
    out = {}
    for name in ("lightgcn", "mgcn", "miggt"):
        model = build_backbone(name, dataset, 0, {"hidden": 16} if name == "miggt" else None)
        config = TrainConfig.for_backbone(type(model), max_epochs=4, batch_size=64)
        train(model, torch.from_numpy(dataset.train), torch.from_numpy(dataset.valid), config, 0, progress=False)
        out[name] = model
    return dataset, out


@pytest.mark.parametrize("backbone", ["lightgcn", "mgcn", "miggt"])
@pytest.mark.parametrize("regime", ["interaction", "user", "item"])
def test_all_interventions_off_is_exactly_mmrecun(trained, backbone, regime):
    dataset, models = trained
    task = make_task(dataset, regime, "random", 0.2, 0)
    budget = Budget(epochs=3, batch_size=16, seed=0)
    a = METHODS.get("mmrecun")(**SHARED).unlearn(copy.deepcopy(models[backbone]), task, budget)
    b = METHODS.get("tru")(**ALL_OFF).unlearn(copy.deepcopy(models[backbone]), task, budget)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key


@pytest.mark.parametrize("name", ["tru", "tru-no-gate", "tru-no-scale", "tru-no-isolation"])
def test_tru_and_ablations_conform(name):
    check_method(METHODS.get(name), backbone="mgcn", regime="item")


@pytest.mark.parametrize("regime", ["interaction", "user", "item"])
def test_decisions_are_recorded_and_isolation_freezes(trained, regime):
    dataset, models = trained
    task = make_task(dataset, regime, "random", 0.2, 0)
    method = METHODS.get("tru")(layer_budget=0.2)
    before = copy.deepcopy(models["mgcn"])
    after = method.unlearn(copy.deepcopy(models["mgcn"]), task, Budget(epochs=3, batch_size=16, seed=0))
    d = json.loads(json.dumps(method.summary()))
    assert 0.0 <= d["p_star"] <= 1.0 and d["epochs_run"] >= 1 and 0.0 <= d["final_gate"] <= 1.0
    if regime == "interaction":
        assert d["p_star"] == d["p_held_out"] and "p_cold_start" not in d
    else:  # the cold-start level, never above the held-out one
        assert d["p_star"] == min(d["p_cold_start"], d["p_held_out"])
    assert set(d["alpha"]) == {"id", "image", "text", "fusion"}
    assert d["capacity_share"] <= 0.2 or len(d["units"]) == 1
    changed = {k for k, p in after.named_parameters() if not torch.equal(p, dict(before.named_parameters())[k])}
    chosen = {u["unit"].split("[")[0] for u in d["units"]}
    assert changed <= chosen
    assert all(p.requires_grad for p in after.parameters())  # frozen only during the run


def test_row_units_only_move_their_rows(trained):
    dataset, models = trained
    task = make_task(dataset, "user", "random", 0.2, 0)
    method = METHODS.get("tru")(layer_budget=0.01, scale_power=0.0)
    before = copy.deepcopy(models["lightgcn"])
    after = method.unlearn(copy.deepcopy(models["lightgcn"]), task, Budget(epochs=2, batch_size=16, seed=0))
    unit = method.summary()["units"]
    assert len(unit) == 1
    name = unit[0]["unit"]
    table, label = name.split("[")
    moved = (getattr(after, table) != getattr(before, table)).any(1)
    rows = torch.zeros(moved.shape[0], dtype=torch.bool)
    index = task.users if table.startswith("user") else task.items
    rows[torch.from_numpy(index)] = True
    expected = rows if label == "touched]" else ~rows
    assert not moved[~expected].any()


class TinyMF(Backbone):
    """A backbone defined only in this test: ID embeddings plus one content branch."""

    def __init__(self, n_users, n_items, features, dim: int = 8):
        super().__init__(n_users, n_items, features)
        self.user_embedding = nn.Parameter(torch.randn(n_users, dim) * 0.1)
        self.item_embedding = nn.Parameter(torch.randn(n_items, dim) * 0.1)
        feat = next(iter(features.values()))
        self.register_buffer("content", torch.as_tensor(feat))
        self.proj = nn.Linear(feat.shape[1], dim)

    def forward(self, graph):
        ego = torch.cat([self.user_embedding, self.item_embedding + self.proj(self.content)])
        out = propagate(graph.adjacency(device=ego.device), ego, 1)[-1] + ego
        return out[: self.n_users], out[self.n_users :]

    def parameter_specs(self):
        return [
            ParamSpec("user_embedding", "id", rows="user"),
            ParamSpec("item_embedding", "id", rows="item"),
            ParamSpec("proj.weight", "content", produces=self.n_items * 8),
            ParamSpec("proj.bias", "content", produces=self.n_items * 8),
        ]


def test_tru_runs_on_a_backbone_it_has_never_seen():
    dataset = tiny_dataset()
    features = {m: torch.from_numpy(f) for m, f in dataset.features.items()}
    model = TinyMF(dataset.n_users, dataset.n_items, features)
    train(model, torch.from_numpy(dataset.train), torch.from_numpy(dataset.valid),
          TrainConfig(max_epochs=3, batch_size=32, lr=0.01), 0, progress=False)
    method = METHODS.get("tru")(layer_budget=0.5)
    method.unlearn(model, make_task(dataset, "item", "random", 0.2, 0), Budget(epochs=2, batch_size=16))
    assert set(method.summary()["alpha"]) == {"id", "content"}


def test_bad_modality_scales():
    from harness.core.errors import UserError

    with pytest.raises(UserError, match="modality_scales must be a JSON object"):
        METHODS.get("tru")(modality_scales="[1, 2]")


def _rank_stats_by_sorting(users, items, pairs, exclude, p_star):
    """The plain formulas of :func:`methods.tru.rank_stats`, one pair at a time."""
    dense = exclude.to_dense().bool()
    out = []
    for u, i in pairs.tolist():
        scores = users[u] @ items.T
        cand = scores[~dense[u]]
        n = max(len(cand), 2)
        p = 1.0 - float((cand > scores[i]).sum()) / (n - 1)
        ordered = cand.sort(descending=True).values
        at = ordered[round((1.0 - p_star) * (n - 1))]
        out.append((p, float(cand.mean()), float(cand.std()), float(at)))
    return torch.tensor(out)


@pytest.mark.parametrize("p_star", [0.0, 0.37, 0.9, 1.0])
def test_rank_stats_match_the_plain_formulas(p_star):
    from methods.tru import rank_stats

    gen = torch.Generator().manual_seed(0)
    n_users, n_items = 12, 40
    users, items = torch.randn(n_users, 8, generator=gen), torch.randn(n_items, 8, generator=gen)
    # users excluding from 0 to 30 of the 40 items, so the candidate counts differ widely
    mask = torch.rand(n_users, n_items, generator=gen) < torch.linspace(0, 0.75, n_users)[:, None]
    pairs = torch.stack([torch.randint(n_users, (60,), generator=gen), torch.randint(n_items, (60,), generator=gen)], 1)
    p, mean, std, at = rank_stats(users, items, pairs, mask.to_sparse_csr(), p_star)
    expected = _rank_stats_by_sorting(users, items, pairs, mask.to_sparse_csr(), p_star)
    torch.testing.assert_close(torch.stack([p, mean, std, at], 1), expected, rtol=1e-5, atol=1e-5)


def test_held_out_level_never_reads_the_deleted_users(trained, monkeypatch):
    """User deletion: the deleted users' validation pairs are gone with them."""
    dataset, models = trained
    task = make_task(dataset, "user", "random", 0.2, 0)
    method = METHODS.get("tru")()
    seen = []
    plain = type(method)._percentiles

    def spy(self, model, pairs):
        seen.append(pairs.clone())
        return plain(self, model, pairs)

    monkeypatch.setattr(type(method), "_percentiles", spy)
    method.unlearn(copy.deepcopy(models["mgcn"]), task, Budget(epochs=1, batch_size=16, seed=0))
    held_out = seen[0]  # the first call: the held-out level
    assert len(held_out) and not torch.isin(held_out[:, 0], torch.from_numpy(task.removed_users)).any()
