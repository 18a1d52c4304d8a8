import copy
import json

import pytest
import torch
from torch import nn

from backbones.base import Backbone, ParamSpec, eval_embeddings, propagate
from harness.data.regimes import make_task
from harness.protocol.training import TrainConfig, train
from harness.protocol.models import build_backbone
from methods import METHODS, Budget
from harness.data.tiny import tiny_dataset
from harness.protocol.conformance import check_method
from harness.protocol.unlearning import updated_fraction
from methods.tru import TRU, add_item_residual, choose_units, fisher, matched_targets, percentiles, stratified

SHARED = {"lr": 1e-3, "lambda_f": 1.0, "max_epochs": 10}  # the family's hyperparameters, the same on both sides
ALL_OFF = {"gate_strength": 0.0, "scale_power": 0.0, "isolation_coverage": 1.0, "stop_tolerance": 0.0} | SHARED


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
    method = METHODS.get("tru")(isolation_coverage=0.5, stop_tolerance=0.0)
    before = copy.deepcopy(models["mgcn"])
    after = method.unlearn(copy.deepcopy(models["mgcn"]), task, Budget(epochs=3, batch_size=16, seed=0))
    d = json.loads(json.dumps(method.summary()))
    assert d["target"] == {"interaction": "held_out", "user": "redraw", "item": "floor"}[regime]
    assert d["epochs_run"] == 3 and len(d["distances"]) == 4  # before each pass and after the last
    assert 0.0 <= d["final_distance"] <= 1.0 and 0.0 <= d["final_above_target"] <= 1.0
    assert set(d["alpha"]) == {"id", "image", "text", "fusion"}
    assert 0.5 <= d["coverage"] <= 1.0 and 0.0 < d["capacity_share"] < 1.0
    changed = {k for k, p in after.named_parameters() if not torch.equal(p, dict(before.named_parameters())[k])}
    assert changed <= set(d["units"])
    assert all(p.requires_grad for p in after.parameters())  # frozen only during the run


def test_only_chosen_rows_move(trained):
    """Per-row units: a row of a partly chosen table moves only if it was chosen
    (interaction deletion: no re-drawn start moves rows before the steps)."""
    dataset, models = trained
    task = make_task(dataset, "interaction", "random", 0.2, 0)
    method = METHODS.get("tru")(isolation_coverage=0.3, scale_power=0.0, stop_tolerance=0.0)
    captured = {}
    plain = TRU._isolate

    def spy(self, model, task, fisher_f, kappa):
        captured.update(plain(self, model, task, fisher_f, kappa))
        return captured

    before = copy.deepcopy(models["lightgcn"])
    TRU._isolate = spy
    try:
        after = method.unlearn(copy.deepcopy(models["lightgcn"]), task, Budget(epochs=2, batch_size=16, seed=0))
    finally:
        TRU._isolate = plain
    partial = {k: m for k, m in captured.items() if m is not None}
    assert partial, "a coverage of 0.3 should choose some rows of a table, not whole tables"
    for name, rows in partial.items():
        moved = (getattr(after, name) != getattr(before, name)).any(1)
        assert not moved[~rows].any(), name


def test_units_cover_the_share_at_the_least_capacity():
    """Hand case: sensitivities 5, 3, 2 with capacities 10, 1, 1. By S/c the order is
    (3, 2, 5); covering half of the total 10 takes the two cheap units. Choosing by
    sensitivity alone would take the single costly one."""
    s = torch.tensor([5.0, 3.0, 2.0], dtype=torch.float64)
    c = torch.tensor([10.0, 1.0, 1.0], dtype=torch.float64)
    assert choose_units(s, c, 0.5).tolist() == [1, 2]
    assert choose_units(s, c, 0.3).tolist() == [1]
    assert choose_units(s, c, 1.0).tolist() == [1, 2, 0]
    assert choose_units(torch.zeros(3, dtype=torch.float64), c, 0.5).tolist() == [0]  # at least one


def test_row_capacity_grows_with_retained_degree(trained):
    """User deletion: the deleted users have no retained pairs, so their rows are the
    cheapest units; the item rows the retained users share come after them."""
    dataset, models = trained
    task = make_task(dataset, "user", "random", 0.2, 0)
    method = METHODS.get("tru")(isolation_coverage=0.6, scale_power=0.0)
    method.unlearn(copy.deepcopy(models["lightgcn"]), task, Budget(epochs=1, batch_size=16, seed=0))
    units = method.summary()["units"]
    assert units.get("user_embedding") == len(task.users), units  # every deleted user's row, no other


def test_branch_factors_redistribute_the_step_size(trained):
    """sum_b n_b alpha_b / sum_b n_b = 1 over the trainable entries of each branch."""
    dataset, models = trained
    task = make_task(dataset, "interaction", "random", 0.2, 0)
    method = METHODS.get("tru")(isolation_coverage=1.0, scale_power=2.0, modality_scales='{"image": 4, "text": 0.25}')
    model = copy.deepcopy(models["mgcn"])
    method.unlearn(model, task, Budget(epochs=1, batch_size=16, seed=0))
    alpha = method.summary()["alpha"]
    entries = {b: sum(dict(model.named_parameters())[k].numel() for k in names) for b, names in model.branches().items()}
    mean = sum(entries[b] * alpha[b] for b in alpha) / sum(entries.values())
    assert mean == pytest.approx(1.0)
    assert alpha["image"] > alpha["text"]


def test_stop_rule_fires(trained):
    dataset, models = trained
    task = make_task(dataset, "interaction", "random", 0.2, 0)
    never = METHODS.get("tru")(stop_tolerance=0.0)
    never.unlearn(copy.deepcopy(models["miggt"]), task, Budget(epochs=4, batch_size=16, seed=0))
    assert never.summary()["epochs_run"] == 4
    start = never.summary()["distances"][0]
    # just below the starting distance: not met before the first pass; after it, the
    # distance is either below (it fell) or above the one before (it grew): stop either way
    loose = METHODS.get("tru")(stop_tolerance=start * 0.999)
    loose.unlearn(copy.deepcopy(models["miggt"]), task, Budget(epochs=4, batch_size=16, seed=0))
    d = loose.summary()
    assert d["epochs_run"] == 1 and d["distances"][0] == pytest.approx(start)


def test_item_residual_gives_miggt_target_item_units(trained):
    """MIG-GT has no item ID rows: in item deletion TRU adds a zero residual on the item
    outputs; only rows it chose move, and at zero it changes nothing."""
    dataset, models = trained
    task = make_task(dataset, "item", "random", 0.2, 0)
    model = copy.deepcopy(models["miggt"])
    graph = task.retain_graph()
    plain = eval_embeddings(model, graph)
    add_item_residual(model, plain[1].shape[1])
    for a, b in zip(plain, eval_embeddings(model, graph)):
        assert torch.equal(a, b)
    method = METHODS.get("tru")(isolation_coverage=0.5)
    after = method.unlearn(copy.deepcopy(models["miggt"]), task, Budget(epochs=2, batch_size=16, seed=0))
    d = method.summary()
    assert d["item_residual"] and "item_residual" in d["units"]
    moved = (after.item_residual != 0).any(1)
    assert moved[torch.from_numpy(task.items)].any()
    assert int(moved.sum()) <= d["units"]["item_residual"]


def test_frozen_batch_norm_keeps_its_statistics(trained):
    """MIG-GT's encoders hold BatchNorm: where isolation freezes an encoder, its running
    statistics stay; under MMRecUn they change, and updated_fraction counts them."""
    dataset, models = trained
    task = make_task(dataset, "user", "random", 0.2, 0)
    original = models["miggt"]
    method = METHODS.get("tru")(isolation_coverage=0.1)
    after = method.unlearn(copy.deepcopy(original), task, Budget(epochs=2, batch_size=16, seed=0))
    frozen = [k for k in original.state_dict() if "running_mean" in k  # in an encoder with no chosen unit
              and not any(u.startswith(k.rsplit(".", 2)[0] + ".") for u in method.summary()["units"])]
    assert frozen
    for key in frozen:
        assert torch.equal(after.state_dict()[key], original.state_dict()[key]), key
    mm = METHODS.get("mmrecun")().unlearn(copy.deepcopy(original), task, Budget(epochs=2, batch_size=16, seed=0))
    buffers = sum(t.numel() for k, t in original.state_dict().items() if "running" in k)
    changed = updated_fraction(original, mm) * sum(t.numel() for t in original.state_dict().values())
    params_changed = sum(int((p != q).sum()) for p, q in zip(original.parameters(), mm.parameters()))
    assert changed - params_changed >= 0.9 * buffers


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
    method = METHODS.get("tru")(isolation_coverage=0.5)
    method.unlearn(model, make_task(dataset, "item", "random", 0.2, 0), Budget(epochs=2, batch_size=16))
    assert set(method.summary()["alpha"]) == {"id", "content"}


def test_bad_modality_scales():
    from harness.core.errors import UserError

    with pytest.raises(UserError, match="modality_scales must be a JSON object"):
        METHODS.get("tru")(modality_scales="[1, 2]")


def _percentiles_one_by_one(users, items, pairs, exclude):
    """The plain formula of :func:`methods.tru.percentiles`, one pair at a time."""
    dense = exclude.to_dense().bool()
    out = []
    for u, i in pairs.tolist():
        scores = users[u] @ items.T
        cand = scores[~dense[u]]
        n = max(len(cand), 2)
        out.append(1.0 - float((cand > scores[i]).sum()) / (n - 1))
    return torch.tensor(out)


def test_percentiles_match_the_plain_formula():
    gen = torch.Generator().manual_seed(0)
    n_users, n_items = 12, 40
    users, items = torch.randn(n_users, 8, generator=gen), torch.randn(n_items, 8, generator=gen)
    # users excluding from 0 to 30 of the 40 items, so the candidate counts differ widely
    mask = torch.rand(n_users, n_items, generator=gen) < torch.linspace(0, 0.75, n_users)[:, None]
    pairs = torch.stack([torch.randint(n_users, (60,), generator=gen), torch.randint(n_items, (60,), generator=gen)], 1)
    plain = _percentiles_one_by_one(users, items, pairs, mask.to_sparse_csr())
    torch.testing.assert_close(percentiles(users, items, pairs, mask.to_sparse_csr()), plain)
    # scored in blocks of one, five and twelve users: each pair still meets its own user's row
    for block_entries in (1, 5 * n_items, 12 * n_items):
        got = percentiles(users, items, pairs, mask.to_sparse_csr(), block_entries=block_entries)
        torch.testing.assert_close(got, plain)


def test_matched_targets_by_hand():
    """p = (0.9, 0.1, 0.5) against the target sample (0.2, 0.4): levels 1/6, 1/2, 5/6 give
    quantiles 0.2333, 0.3, 0.3667, assigned in p's ascending order. The one-sided distance
    is ((0.9 - 0.3667) + 0 + (0.5 - 0.3)) / 3 = 0.2444; matching in the opposite order
    would give ((0.9 - 0.2333) + 0 + 0.2) / 3 = 0.2889."""
    p = torch.tensor([0.9, 0.1, 0.5])
    t = matched_targets(p, torch.tensor([0.2, 0.4]))
    torch.testing.assert_close(t, torch.tensor([0.2 + 0.2 * 5 / 6, 0.2 + 0.2 / 6, 0.3]))
    assert float((p - t).clamp(min=0).mean()) == pytest.approx((0.9 - 0.2 - 0.2 * 5 / 6 + 0.2) / 3)


def test_stratified_probe_covers_every_user_first():
    pairs = torch.tensor([[0, k] for k in range(10)] + [[1, 0], [2, 0]])
    picked = stratified(pairs, 3, torch.Generator().manual_seed(0))
    assert sorted(picked[:, 0].tolist()) == [0, 1, 2]


def test_random_sign_fisher_is_unbiased(trained):
    """The random-sign estimate of sum_n g_n^2 against per-pair backward passes."""
    dataset, models = trained
    model = copy.deepcopy(models["lightgcn"])
    graph = make_task(dataset, "interaction", "random", 0.2, 0).retain_graph()
    pairs = torch.from_numpy(dataset.train[:24])
    negatives = torch.randint(dataset.n_items, (24,), generator=torch.Generator().manual_seed(1))
    exact = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
    for n in range(len(pairs)):
        one = fisher(model, graph, pairs[n : n + 1], negatives[n : n + 1], True, 1, torch.Generator())
        for k in exact:
            exact[k] += one[k] / len(pairs)  # one pair, one draw: its g^2 exactly
    estimate = fisher(model, graph, pairs, negatives, True, 2000, torch.Generator().manual_seed(2))
    for k in exact:
        assert float(estimate[k].sum()) == pytest.approx(float(exact[k].sum()), rel=0.05), k


def test_target_never_reads_the_deleted_users(trained, monkeypatch):
    """User deletion: the target comes from re-drawn copies of D_f, never from the deleted
    users' validation pairs; interaction deletion reads held-out pairs of retained users."""
    dataset, models = trained
    plain = TRU._percentiles
    for regime in ("user", "interaction"):
        task = make_task(dataset, regime, "random", 0.2, 0)
        method = METHODS.get("tru")()
        seen = []

        def spy(self, model, pairs):
            seen.append(pairs.clone())
            return plain(self, model, pairs)

        monkeypatch.setattr(type(method), "_percentiles", spy)
        method.unlearn(copy.deepcopy(models["mgcn"]), task, Budget(epochs=1, batch_size=16, seed=0))
        forget = torch.from_numpy(task.forget)
        valid = torch.from_numpy(dataset.valid)
        for pairs in seen:
            assert torch.equal(pairs, forget) or not torch.isin(pairs[:, 0], torch.from_numpy(task.removed_users)).any()
        if regime == "interaction":
            assert any(len(p) and torch.isin(p[:, 0] * 10**6 + p[:, 1], valid[:, 0] * 10**6 + valid[:, 1]).all()
                       for p in seen)


def test_user_deletion_starts_from_the_redrawn_rows(trained):
    """The target of user deletion is the re-drawn copies' D_f ranks; TRU starts from the
    first copy, and with a tolerance that start already meets, takes no step at all."""
    dataset, models = trained
    task = make_task(dataset, "user", "random", 0.2, 0)
    before = models["lightgcn"]
    method = METHODS.get("tru")(stop_tolerance=0.2)
    after = method.unlearn(copy.deepcopy(before), task, Budget(epochs=3, batch_size=16, seed=0))
    d = method.summary()
    assert d["target"] == "redraw" and d["steps"] == 0 and d["epochs_run"] == 0
    moved = (after.user_embedding != before.user_embedding).any(1)
    deleted = torch.zeros_like(moved)
    deleted[torch.from_numpy(task.users)] = True
    assert torch.equal(moved, deleted)
    assert torch.equal(after.item_embedding, before.item_embedding)
