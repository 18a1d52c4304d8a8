import pandas as pd
import pytest


def rec(method, seed=0, ndcg=0.1, forget=0.5, regime="user", params="{}", **extra):
    base = {"dataset": "tiny", "backbone": "lightgcn", "regime": regime, "method": method, "seed": seed,
            "params": params, "status": "ok", "sweep": None, "split": None, "trial_id": None,
            "retain_test_ndcg@20": ndcg, "forget_recall@20": forget, "retain_test_recall@20": ndcg * 1.5,
            "forget_ndcg@20": forget / 2, "mia_auc": 0.6, "retrain_mia_auc": 0.3, "agreement@20": 0.8,
            "unlearn_seconds": 1.0, "speedup": 100.0, "updated_fraction": 0.5,
            "original_retain_test_ndcg@20": 0.14, "original_forget_recall@20": 0.6, "original_mia_auc": 0.9,
            "retrain_retain_test_ndcg@20": 0.13, "retrain_forget_recall@20": 0.05}
    return base | extra


@pytest.fixture
def records():
    return pd.DataFrame([
        rec("graph_edit", 0, 0.140, 0.30), rec("graph_edit", 1, 0.142, 0.32),
        rec("mmrecun", 0, 0.130, 0.20), rec("mmrecun", 1, 0.134, 0.22),
        rec("tru", 0, 0.135, 0.10, params='{"lr": 0.01}'), rec("tru", 1, 0.137, 0.12, params='{"lr": 0.01}'),
        rec("tru", 0, 0.120, 0.15, params='{"lr": 0.03}', sweep="s", split="test"),  # dominated by tru #1
        rec("tru", 0, 0.150, 0.40, params='{"lr": 0.02}', sweep="s", split="valid", trial_id="t1"),
        rec("tru-no-gate", 0, 0.131, 0.11),
        rec("mmrecun", 0, status="error", error="boom", params='{"x": 1}'),
    ])
