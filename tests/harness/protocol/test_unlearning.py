import json
import math

import pytest
import torch

from harness.cli import main
from harness.data.regimes import make_task
from harness.protocol.unlearning import prepare, run_method
from methods import METHODS, Budget
from methods.reverse import MMRecUn

FIELDS = [
    "dataset", "backbone", "regime", "selection", "ratio", "method", "params", "seed", "status", "error",
    "retain_valid_recall@20", "retain_valid_ndcg@20", "retain_test_recall@20", "retain_test_ndcg@20",
    "retain_test_recall@10", "retain_test_ndcg@10", "forget_recall@20", "forget_ndcg@20",
    "original_forget_recall@20", "original_forget_ndcg@20", "retrain_forget_recall@20", "retrain_forget_ndcg@20",
    "agreement@20", "mia_auc", "retrain_mia_auc", "original_mia_auc", "unlearn_seconds", "retrain_seconds",
    "speedup", "updated_fraction", "data_fingerprint", "code_version", "started_at", "finished_at",
    "forget_gap@20", "forget_ks", "original_forget_ks", "privleak", "privleak_low", "privleak_high",
    "original_privleak", "mia_diff_auc", "retrain_mia_diff_auc", "audit_pairs", "audit_seconds", "measure_seconds",
    "retrain2_forget_ks", "retrain2_agreement@20", "retrain2_privleak", "retrain2_mia_auc",
    "retrain2_retain_test_ndcg@20", "retrain_retain_valid_ndcg@20",
    "retain_test_ndcg@20_inactive", "fairness_active_users",
]
#: present in every record; NaN on the tiny data, whose 2 active users are below fairness.MIN_GROUP
FAIRNESS = ["retain_test_ndcg@20_active", "fairness_gap@20", "fairness_gap_vs_retrain@20", "original_fairness_gap@20",
            "retrain_fairness_gap@20", "retrain2_fairness_gap@20"]


@pytest.fixture(scope="module")
def refs_by_regime(tmp_path_factory):
    from harness.data.tiny import tiny_dataset

    dataset = tiny_dataset(n_users=40, n_items=50)
    cache = tmp_path_factory.mktemp("cache")
    return {
        regime: prepare(dataset, "lightgcn", make_task(dataset, regime, "random", 0.2, 0), 0,
                        train_overrides={"max_epochs": 5}, cache_dir=cache, progress=False, audit_size=100,
                        report=True)
        for regime in ("interaction", "user", "item")
    }


@pytest.mark.parametrize("regime", ["interaction", "user", "item"])
@pytest.mark.parametrize("method", ["graph_edit", "mmrecun", "retrain"])
def test_record_schema(refs_by_regime, regime, method):
    record = run_method(refs_by_regime[regime], method, budget=Budget(epochs=2, batch_size=32))
    assert record["status"] == "ok", record["error"]
    for field in FIELDS:
        assert field in record, field
        value = record[field]
        if isinstance(value, float):
            assert math.isfinite(value), field
    assert ("item_exposure@20" in record) == (regime == "item")
    assert ("retrain_item_exposure@20" in record) == (regime == "item")
    assert ("target_test_recall@20" in record) == (regime == "item")
    assert record["forget_gap@20"] == pytest.approx(record["forget_recall@20"] - record["retrain_forget_recall@20"])
    assert all(field in record for field in FAIRNESS) and record["fairness_active_users"] < 20
    assert math.isnan(record["retain_test_ndcg@20_active"]) and math.isnan(record["fairness_gap_vs_retrain@20"])
    assert 0.0 <= record["forget_ks"] <= 1.0 and record["privleak_low"] <= record["privleak"] <= record["privleak_high"]
    json.loads(record["params"])


def test_retrain_matches_the_reference_and_graph_edit_changes_nothing(refs_by_regime):
    refs = refs_by_regime["user"]
    retrain = run_method(refs, "retrain")
    assert retrain["agreement@20"] == 1.0
    assert retrain["forget_recall@20"] == retrain["retrain_forget_recall@20"]
    assert retrain["mia_auc"] == retrain["retrain_mia_auc"]
    assert retrain["forget_ks"] == 0.0 and retrain["privleak"] == 0.0 and retrain["forget_gap@20"] == 0.0
    assert retrain["retrain2_forget_ks"] > 0.0  # another initialisation: the noise floor is not zero
    assert run_method(refs, "graph_edit")["updated_fraction"] == 0.0
    assert run_method(refs, "mmrecun", budget=Budget(epochs=1))["updated_fraction"] > 0.5


def test_a_failing_method_is_an_error_record(refs_by_regime, monkeypatch):
    class Broken(MMRecUn):
        """Raises in its forget loss."""

        def forget_loss(self, *args):
            raise RuntimeError("boom")

    monkeypatch.setitem(METHODS._items, "broken_test_method", Broken)  # registered for this test only
    Broken.name = "broken_test_method"
    record = run_method(refs_by_regime["interaction"], "broken_test_method")
    assert record["status"] == "error" and "boom" in record["error"]


def test_a_diverged_model_is_an_error_record_that_says_so(refs_by_regime):
    import methods.faults  # noqa: F401  (registers fault-nan)

    record = run_method(refs_by_regime["interaction"], "fault-nan")
    assert record["status"] == "error" and record["error"] == (
        "FloatingPointError: the model's embeddings are not finite (a diverged update)")


def test_a_partitioned_method_reports_its_own_original_and_its_shards_wall_time(refs_by_regime):
    refs = refs_by_regime["user"]
    record = run_method(refs, "sisa", {"n_shards": 3})
    assert record["status"] == "ok", record["error"]
    decisions = json.loads(record["decisions"])
    for field in ("own_original_retain_valid_ndcg@20", "own_original_retain_test_ndcg@20", "train_seconds_total"):
        assert math.isfinite(record[field]) and record[field] > 0, field
    # the sharded original is another model than the shared original: its own figures, beside the original's
    assert record["own_original_retain_test_ndcg@20"] != record["original_retain_test_ndcg@20"]
    assert decisions["retrained"].endswith("of 3") and decisions["workers"] == 1
    # shards trained one after another: the wall time is their sum (the in-process trainer)
    assert record["unlearn_seconds"] == pytest.approx(record["train_seconds_total"], rel=0.5)
    again = run_method(refs, "sisa", {"n_shards": 3})  # the shards come from the model cache now
    assert again["unlearn_seconds"] == record["unlearn_seconds"] and again["retain_test_ndcg@20"] == record["retain_test_ndcg@20"]
    assert math.isnan(run_method(refs, "graph_edit")["train_seconds_total"])


def test_cli_unlearn_json_and_bad_request(tiny_folder, tmp_path, capsys):
    args = ["unlearn", "--dataset", str(tiny_folder), "--backbone", "lightgcn", "--regime", "user",
            "--method", "neggrad_plus", "--epochs", "3", "--budget-epochs", "1", "--json", "--quiet",
            "--cache-dir", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and json.loads(out)["method"] == "neggrad_plus"
    request = tmp_path / "r.csv"
    request.write_text("userID,itemID\n0,12345\n")
    assert main(args + ["--request", str(request)]) == 2
    err = capsys.readouterr().err
    assert "unknown itemID 12345" in err and err.count("\n") == 1
    assert main(["unlearn", "--dataset", str(tiny_folder), "--ratio", "1.5", "--cache-dir", str(tmp_path)]) == 2
    assert "ratio 1.5" in capsys.readouterr().err


def test_item_deletion_leaves_the_target_items_out_of_retained_truth(refs_by_regime, monkeypatch):
    """Forgetting the target items must not lower retained NDCG: their held-out pairs are
    reported as ``target_test_recall@20``, not as retained truth."""
    from harness.protocol import unlearning

    refs = refs_by_regime["item"]
    truths = []
    plain = unlearning.metrics_from_scores
    monkeypatch.setattr(unlearning, "metrics_from_scores",
                        lambda score, exclude, truth: truths.append(truth) or plain(score, exclude, truth))
    record = run_method(refs, "graph_edit")
    targets = torch.from_numpy(refs.task.items)
    retained_valid, retained_test, forget, target_test = truths[:4]
    for mask in (retained_valid, retained_test):
        assert not torch.isin(mask.col_indices(), targets).any()
    assert torch.isin(target_test.col_indices(), targets).all() and target_test.col_indices().numel() > 0
    assert 0.0 <= record["target_test_recall@20"] <= 1.0


def test_forget_ks_hand_computed(refs_by_regime):
    """KS of the D_f percentiles: 0 for the same ranks; 1 when every pair of one model
    ranks above every pair of the other (a swapped argument gives the same, a wrong sign does not apply)."""
    import numpy as np
    from dataclasses import replace

    refs = refs_by_regime["interaction"]
    m = refs.retrain_measure
    n = len(m.forget_percentiles)
    assert refs.distances(m)["forget_ks"] == 0.0
    top = replace(m, forget_percentiles=np.full(n, 2.0))  # above every retrain percentile
    assert refs.distances(top)["forget_ks"] == 1.0
    half = replace(m, forget_percentiles=np.sort(m.forget_percentiles)[np.r_[np.arange(n // 2), np.arange(n // 2)]])
    assert 0.4 < refs.distances(half)["forget_ks"] < 0.6


def test_fairness_figures_of_a_record_when_the_groups_are_large_enough(tmp_path):
    from harness.data.tiny import tiny_dataset

    dataset = tiny_dataset(n_users=420, n_items=60, per_user=6)  # 21 active users, all with test pairs
    refs = prepare(dataset, "lightgcn", make_task(dataset, "interaction", "random", 0.1, 0), 0,
                   train_overrides={"max_epochs": 2}, cache_dir=tmp_path, progress=False, audit_size=100)
    record = run_method(refs, "graph_edit")
    assert record["fairness_active_users"] >= 20
    assert record["fairness_gap@20"] == pytest.approx(
        record["retain_test_ndcg@20_active"] - record["retain_test_ndcg@20_inactive"])
    assert record["fairness_gap_vs_retrain@20"] == pytest.approx(
        record["fairness_gap@20"] - record["retrain_fairness_gap@20"])
    assert math.isfinite(record["original_fairness_gap@20"])


def _steps(cache, regime: str, epochs: int) -> list:
    """Three 5% requests of ``regime`` on a tiny dataset: per step, its request and the
    references of the cumulative task (LightGCN, ``epochs`` training epochs)."""
    from harness.data.regimes import make_steps
    from harness.data.tiny import tiny_dataset

    dataset = tiny_dataset(n_users=40, n_items=50)
    return [(request, prepare(dataset, "lightgcn", cumulative, 0, train_overrides={"max_epochs": epochs},
                              cache_dir=cache, progress=False, audit_size=100))
            for request, cumulative in make_steps(dataset, regime, "random", 0.05, 3, seed=0)]


def test_a_sequence_of_requests_chains_the_model_and_measures_each_step_against_its_retrain(tmp_path):
    from harness.protocol.unlearning import run_steps

    steps = _steps(tmp_path, "user", epochs=5)
    retrain = run_steps(steps, "retrain")
    assert [r["step"] for r in retrain] == [1, 2, 3] and all(r["status"] == "ok" for r in retrain)
    for record, (_, refs) in zip(retrain, steps):  # step t's retrain is its reference, on every pair deleted so far
        assert record["forget_ks"] == 0.0 and record["agreement@20"] == 1.0
        assert record["forget_recall@20"] == refs.retrain_measure.metrics["forget_recall@20"]
    sisa = run_steps(steps, "sisa", {"n_shards": 4})
    decisions = [json.loads(r["decisions"]) for r in sisa]
    # step 1 trains the sharded original; later steps retrain only the shards their request touches
    assert "original_train_seconds_total" in decisions[0] and "original_train_seconds_total" not in decisions[1]
    assert all(d["retrained"].endswith("of 4") for d in decisions)
    assert math.isfinite(sisa[0]["own_original_retain_test_ndcg@20"]) and not sisa[1].get("own_original_retain_test_ndcg@20")
    edit = run_steps(steps, "graph_edit")
    assert all(r["updated_fraction"] == 0.0 for r in edit)


def test_each_step_starts_from_the_model_the_previous_step_left(tmp_path, monkeypatch):
    from harness.protocol.unlearning import run_steps

    class AddsOne(MMRecUn):
        """Adds 1 to one parameter entry and reports it."""

        def unlearn(self, model, task, budget):
            with torch.no_grad():
                model.user_embedding[0, 0] += 1.0
                self.decisions["entry"] = float(model.user_embedding[0, 0])
            return model

    monkeypatch.setitem(METHODS._items, "adds_one", AddsOne)
    AddsOne.name = "adds_one"
    steps = _steps(tmp_path, "interaction", epochs=2)
    entries = [json.loads(r["decisions"])["entry"] for r in run_steps(steps, "adds_one")]
    start = float(steps[0][1].original.user_embedding[0, 0])
    assert entries == pytest.approx([start + 1, start + 2, start + 3])  # restarting each step would give start + 1 thrice


def test_after_a_failed_step_the_later_steps_say_so(tmp_path, monkeypatch):
    from harness.protocol.unlearning import run_steps

    class FailsAtStepTwo(MMRecUn):
        """Raises on the second request."""

        def unlearn(self, model, task, budget):
            if task.step == 2:
                raise RuntimeError("boom at 2")
            return model

    monkeypatch.setitem(METHODS._items, "fails_at_two", FailsAtStepTwo)
    FailsAtStepTwo.name = "fails_at_two"
    steps = _steps(tmp_path, "interaction", epochs=2)
    out = run_steps(steps, "fails_at_two")
    assert [r["status"] for r in out] == ["ok", "error", "error"]
    assert "boom at 2" in out[1]["error"] and out[2]["error"] == "step 2 failed" and out[2]["step"] == 3
