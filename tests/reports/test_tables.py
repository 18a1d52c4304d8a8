import math

import pandas as pd
import pytest

from reports.tables import (FIELDS, X, Y, fronts, hypervolumes, method_table, points, reference_rows, references,
                            tidy)
from tests.reports.conftest import NO_RETRAIN2, rec


def test_axes_are_forget_ks_and_test_ndcg():
    assert (X, Y) == ("forget_ks", "retain_test_ndcg@20")
    assert "mia_gap" not in FIELDS and {"forget_gap@20", "forget_ks", "privleak", "mia_diff_auc"} <= set(FIELDS)


def test_table_means_stds_intervals_labels_and_order(records):
    table = method_table(tidy(records))
    assert list(table["label"]) == ["graph_edit", "mmrecun", "tru", "tru front #1", "tru-no-gate"]
    row = table.set_index("label").loc["graph_edit"]
    assert row["seeds"] == 2
    assert row["retain_test_ndcg@20"] == pytest.approx(0.141)
    assert row["retain_test_ndcg@20_std"] == pytest.approx(0.0014142, rel=1e-4)
    # two seeds: half-width t(0.975, 1) * std / sqrt(2) = 12.7062 * 0.0014142 / 1.41421 = 0.0127062
    assert row["retain_test_ndcg@20_high"] == pytest.approx(0.141 + 0.0127062, rel=1e-5)
    assert row["retain_test_ndcg@20_low"] == pytest.approx(0.141 - 0.0127062, rel=1e-5)
    assert row["forget_ks"] == pytest.approx(0.31) and row["forget_gap@20"] == pytest.approx(0.155)
    one = table.set_index("label").loc["tru-no-gate"]
    assert one["retain_test_ndcg@20_std"] == 0.0 and one["retain_test_ndcg@20_low"] == one["retain_test_ndcg@20_high"]
    assert "boom" not in set(table["params"])  # error records are not in tables


def test_trials_stay_out_of_tables_and_fronts(records):
    recs = tidy(records)
    assert set(recs.loc[recs["trial_id"] == "t1", "kind"]) == {"trial"}
    assert "0.02" not in " ".join(method_table(recs)["params"])


def test_each_method_front_drops_its_dominated_configuration(records):
    front = fronts(points(method_table(tidy(records))))
    tru = front[front["method"] == "tru"]
    assert list(tru["label"]) == ["tru"]  # (N 0.136, KS 0.11) dominates the front's (0.12, 0.15)
    assert set(front["method"]) == {"graph_edit", "mmrecun", "tru", "tru-no-gate"}


def test_lower_forget_ks_is_better_on_a_front():
    pts = points(method_table(tidy(pd.DataFrame([rec("tru", 0, 0.13, 0.2, params="a"), rec("tru", 0, 0.13, 0.3, params="b")]))))
    assert list(fronts(pts)[X]) == [0.2]


def test_hypervolumes_use_one_reference(records):
    hv = hypervolumes(points(method_table(tidy(records)))).set_index("method")["hypervolume"]
    # reference (N@20 0, forget KS 1): one point's rectangle is N * (1 - KS)
    assert hv["graph_edit"] == pytest.approx(0.141 * (1 - 0.31))
    assert hv["tru"] == pytest.approx(0.136 * (1 - 0.11))  # its dominated front point adds nothing


def test_hypervolume_of_a_staircase_by_hand():
    frame = pd.DataFrame([rec("tru", 0, 0.10, 0.2, params="a"), rec("tru", 0, 0.14, 0.4, params="b"),
                          rec("tru", 0, 0.05, 1.0, params="c")])  # KS 1: no better than the reference
    hv = hypervolumes(points(method_table(tidy(frame))))["hypervolume"].iloc[0]
    # 0.14 * (1 - 0.4) + 0.10 * ((1 - 0.2) - (1 - 0.4)) = 0.084 + 0.020
    assert hv == pytest.approx(0.104)


def test_reference_rows(records):
    rows = reference_rows(tidy(records)).set_index("label")
    assert list(rows.index) == ["original", "retrain (reference)", "retrain2 (noise floor)"]
    assert rows["reference"].all() and set(rows["seeds"]) == {2}  # seeds 0 and 1; the trial's seed 7 is left out
    retrain = rows.loc["retrain (reference)"]
    assert retrain["forget_ks"] == 0.0 and retrain["forget_gap@20"] == 0.0 and retrain["privleak"] == 0.0
    assert retrain["agreement@20"] == 1.0 and retrain["mia_auc"] == pytest.approx(0.5)
    assert retrain["mia_diff_auc"] == pytest.approx(0.52) and retrain["retain_test_ndcg@20"] == pytest.approx(0.13)
    assert retrain["unlearn_seconds"] == pytest.approx(100.0) and retrain["speedup"] == 1.0
    floor = rows.loc["retrain2 (noise floor)"]
    assert floor["forget_ks"] == pytest.approx(0.05)  # seeds 0 and 1: 0.04, 0.06
    assert floor["forget_ks_high"] == pytest.approx(0.05 + 12.7062 * 0.0141421 / math.sqrt(2), rel=1e-4)
    assert floor["retain_test_ndcg@20"] == pytest.approx(0.129) and floor["privleak"] == pytest.approx(0.01)
    assert floor["forget_gap@20"] == pytest.approx(0.01)  # 0.06 - 0.05
    original = rows.loc["original"]
    assert original["forget_ks"] == pytest.approx(0.61) and original["forget_gap@20"] == pytest.approx(0.55)
    assert original["mia_auc"] == pytest.approx(0.9) and original["privleak"] == pytest.approx(0.8)


def test_reference_rows_take_the_first_record_per_seed_and_skip_a_missing_noise_floor():
    frame = pd.DataFrame([rec("tru", 0, **NO_RETRAIN2), rec("mmrecun", 0, original_forget_ks=0.9, **NO_RETRAIN2)])
    rows = reference_rows(tidy(frame)).set_index("label")
    assert "retrain2 (noise floor)" not in rows.index  # NaN on development seeds
    assert rows.loc["original", "forget_ks"] == pytest.approx(0.6) and rows.loc["original", "seeds"] == 1


def test_references(records):
    ref = references(tidy(records)).iloc[0]
    assert ref["retrain_retain_test_ndcg@20"] == pytest.approx(0.13) and ref["original_mia_auc"] == pytest.approx(0.9)
    assert ref["retrain_forget_ks"] == 0.0 and ref["retrain_agreement@20"] == 1.0
    assert ref["retrain2_forget_ks"] == pytest.approx(0.05) and ref["original_forget_ks"] == pytest.approx(0.61)
    assert ref["retrain2_retain_test_ndcg@20"] == pytest.approx(0.129)
