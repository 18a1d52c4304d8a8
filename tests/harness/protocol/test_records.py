import math

import pytest

from harness.core.errors import UserError
from harness.protocol.records import DEFAULT_OBJECTIVES, OBJECTIVES, objectives


def test_defaults_are_two_sided_and_read_no_test_figures():
    record = {"retain_valid_ndcg@20": 0.15, "retain_test_ndcg@20": 0.9, "forget_recall@20": 0.2, "forget_ks": 0.3,
              "forget_gap@20": -0.1, "privleak": -0.4, "retrain_retain_valid_ndcg@20": 0.16, "unlearn_seconds": 2.0}
    assert DEFAULT_OBJECTIVES == ("retain_valid_ndcg@20", "forget_ks")
    ndcg, ks = objectives(list(DEFAULT_OBJECTIVES))
    assert (ndcg.mode, ndcg.value(record), ndcg.target(record)) == ("max", 0.15, 0.16)
    assert (ks.mode, ks.value(record), ks.target(record)) == ("min", 0.3, 0.0)
    # over-forgetting (gap below 0) and over-unlearning (privleak below 0) cost like their opposites
    assert OBJECTIVES["abs_forget_gap@20"].value(record) == pytest.approx(0.1)
    assert OBJECTIVES["abs_privleak"].value(record) == pytest.approx(0.4)
    assert "forget_recall@20" not in OBJECTIVES  # one-sided: it rewarded burying D_f
    assert math.isnan(OBJECTIVES["agreement@20"].value(record))  # a missing field is NaN, never 0
    assert not any("test" in name for name in OBJECTIVES)


def test_unknown_and_repeated_objectives():
    with pytest.raises(UserError, match=r"unknown objective 'speed' \(valid: retain_valid_ndcg@20, "):
        objectives(["speed"])
    with pytest.raises(UserError, match="repeated objective"):
        objectives(["forget_ks", "forget_ks"])
