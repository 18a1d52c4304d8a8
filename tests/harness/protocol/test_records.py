import math

import pytest

from harness.core.errors import UserError
from harness.protocol.records import OBJECTIVES, objectives


def test_defaults_read_no_test_figures():
    record = {"retain_valid_ndcg@20": 0.15, "retain_test_ndcg@20": 0.9, "forget_recall@20": 0.2,
              "mia_auc": 0.6, "retrain_mia_auc": 0.35, "unlearn_seconds": 2.0}
    ndcg, forget = objectives(["retain_valid_ndcg@20", "forget_recall@20"])
    assert (ndcg.mode, ndcg.value(record)) == ("max", 0.15)
    assert (forget.mode, forget.value(record)) == ("min", 0.2)
    assert OBJECTIVES["mia_gap"].value(record) == pytest.approx(0.25)
    assert OBJECTIVES["unlearn_seconds"].mode == "min"
    assert math.isnan(OBJECTIVES["agreement@20"].value(record))  # a missing field is NaN, never 0
    assert not any("test" in name for name in OBJECTIVES)


def test_unknown_and_repeated_objectives():
    with pytest.raises(UserError, match=r"unknown objective 'speed' \(valid: retain_valid_ndcg@20, "):
        objectives(["speed"])
    with pytest.raises(UserError, match="repeated objective"):
        objectives(["mia_gap", "mia_gap"])
