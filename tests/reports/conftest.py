import math

import pandas as pd
import pytest


def rec(method, seed=0, ndcg=0.1, ks=0.5, regime="user", params="{}", **extra):
    """A protocol-v2 record: test N@20 ``ndcg``, forget KS ``ks``; forget R@20 ``0.05 + ks / 2``
    against the retrained model's 0.05 (so forget gap@20 = ``ks / 2``); reference figures
    that move with the seed (the second retrain's KS is ``0.04 + 0.02 * seed``)."""
    forget = 0.05 + ks / 2
    base = {"dataset": "tiny", "backbone": "lightgcn", "regime": regime, "method": method, "seed": seed,
            "params": params, "status": "ok", "sweep": None, "split": None, "trial_id": None,
            "retain_test_ndcg@20": ndcg, "retain_test_recall@20": ndcg * 1.5, "forget_recall@20": forget,
            "forget_ndcg@20": forget / 2, "forget_gap@20": forget - 0.05, "forget_ks": ks, "agreement@20": 0.8,
            "mia_auc": 0.6, "retrain_mia_auc": 0.5, "privleak": 0.2, "privleak_low": 0.1, "privleak_high": 0.3,
            "mia_diff_auc": 0.55, "retrain_mia_diff_auc": 0.52,
            "unlearn_seconds": 1.0, "retrain_seconds": 100.0, "speedup": 100.0, "updated_fraction": 0.5,
            "original_retain_test_ndcg@20": 0.14, "original_retain_test_recall@20": 0.21,
            "original_forget_recall@20": 0.6, "original_forget_ks": 0.6 + 0.02 * seed, "original_agreement@20": 0.7,
            "original_mia_auc": 0.9, "original_privleak": 0.8, "original_privleak_low": 0.7,
            "original_privleak_high": 0.9,
            "retrain_retain_test_ndcg@20": 0.13, "retrain_retain_test_recall@20": 0.2,
            "retrain_forget_recall@20": 0.05,
            "retrain2_retain_test_ndcg@20": 0.128 + 0.002 * seed, "retrain2_retain_test_recall@20": 0.19,
            "retrain2_forget_recall@20": 0.06, "retrain2_forget_ks": 0.04 + 0.02 * seed,
            "retrain2_agreement@20": 0.9, "retrain2_mia_auc": 0.51, "retrain2_privleak": 0.01,
            "retrain2_privleak_low": -0.05, "retrain2_privleak_high": 0.07,
            "retain_valid_ndcg@20": ndcg - 0.01, "original_retain_valid_ndcg@20": 0.125,
            "retrain_retain_valid_ndcg@20": 0.12, "selection": "random", "ratio": 0.2, "forget_pairs": 40,
            "code_version": "0.1.0+abc",
            "settings": '{"audit_size": 2000, "budget": {"batch_size": 1024, "epochs": 5}, "hparams": {}, '
                        '"training": {"batch_size": 64, "lr": 0.001, "max_epochs": 3}}',
            "started_at": f"2026-12-0{1 + seed % 2}T10:00:00+00:00", "finished_at": f"2026-12-0{1 + seed % 2}T10:05:00+00:00"}
    return base | extra


#: a development-seed record has no second retrain
NO_RETRAIN2 = {f"retrain2_{f}": math.nan for f in ("retain_test_ndcg@20", "retain_test_recall@20", "forget_recall@20",
                                                    "forget_ks", "agreement@20", "mia_auc", "privleak",
                                                    "privleak_low", "privleak_high")}


@pytest.fixture
def records():
    return pd.DataFrame([
        rec("graph_edit", 0, 0.140, 0.30), rec("graph_edit", 1, 0.142, 0.32),
        rec("mmrecun", 0, 0.130, 0.20), rec("mmrecun", 1, 0.134, 0.22),
        rec("tru", 0, 0.135, 0.10, params='{"lr": 0.01}'), rec("tru", 1, 0.137, 0.12, params='{"lr": 0.01}'),
        rec("tru", 0, 0.120, 0.15, params='{"lr": 0.03}', sweep="s", split="test"),  # dominated by tru #1
        rec("tru", 7, 0.150, 0.40, params='{"lr": 0.02}', sweep="s", split="valid", trial_id="t1", **NO_RETRAIN2),
        rec("tru-no-gate", 0, 0.131, 0.11),
        rec("mmrecun", 0, status="error", error="boom", params='{"x": 1}'),
    ])
