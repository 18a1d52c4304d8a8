import math

import pandas as pd
import pytest

from reports.tables import (FIELDS, X, Y, config_labels, fronts, hypervolumes, method_table, points, reference_rows,
                            references, settings_block, tidy, trial_points, trial_references)
from tests.reports.conftest import NO_RETRAIN2, rec


def test_axes_are_forget_ks_and_test_ndcg():
    assert (X, Y) == ("forget_ks", "retain_test_ndcg@20")
    assert "mia_gap" not in FIELDS and {"forget_gap@20", "forget_ks", "privleak", "mia_diff_auc"} <= set(FIELDS)


def test_table_means_stds_intervals_labels_and_order(records):
    table = method_table(tidy(records))
    assert list(table["label"]) == ["graph_edit", "mmrecun", "tru", "tru front: lr=0.03", "tru-no-gate"]
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


def test_configurations_are_labelled_with_their_parameters_not_numbers():
    frame = pd.DataFrame([rec("mmrecun", params='{"lr": 0.01, "lambda_f": 1.0}'),
                          rec("mmrecun", params='{"lr": 0.0312345, "lambda_f": 1.0}'),
                          rec("tru", params='{"lr": 0.02, "scales": {"image": 0.5}}', sweep="s", split="test"),
                          rec("tru", params='{"lr": 0.05, "scales": {"image": 0.5}}', sweep="s", split="valid",
                              trial_id="t1"),
                          rec("tru", params='{"lr": 0.02, "scales": {"image": 0.7}}', sweep="s", split="valid",
                              trial_id="t2")])
    labels = list(method_table(tidy(frame))["label"])
    # only what tells them apart; a front configuration by the dimensions its sweep's trials searched
    assert labels == ["mmrecun: lr=0.01", "mmrecun: lr=0.0312", "tru front: lr=0.02, scales.image=0.5"]
    assert not any("#" in label for label in labels)


def test_labels_that_still_coincide_are_numbered():
    assert config_labels(['{"lr": 0.01}', '{"lr": 0.0100001}']) == {'{"lr": 0.01}': "lr=0.01 #1",
                                                                   '{"lr": 0.0100001}': "lr=0.01 #2"}


def test_settings_block_states_what_the_records_were_measured_under(records):
    block = dict(settings_block(tidy(records)))
    assert block["training epochs (max)"] == "3"
    assert block["training"] == "batch_size=64, lr=0.001"
    assert block["unlearning budget"] == "batch_size=1024, epochs=5"
    assert block["audit size"] == "2000"
    assert block["user: ratio, forget-set size"] == "0.2; |D_f| 40"
    assert block["code version"].startswith("graph_edit 0.1.0+abc; mmrecun 0.1.0+abc")
    assert block["date"] == "2026-12-01 10:00 to 2026-12-02 10:05 UTC"


def test_settings_block_of_records_that_carry_no_settings_says_so():
    frame = pd.DataFrame([rec("tru", settings=None, forget_pairs=None)])
    block = dict(settings_block(tidy(frame)))
    assert block["training epochs (max)"] == "not recorded" and block["user: ratio, forget-set size"] == "0.2; |D_f| not recorded"


def test_trial_points_read_validation_figures_only():
    frame = pd.DataFrame([
        rec("tru", 100, ks=0.3, params='{"lr": 0.01}', sweep="s", split="valid", trial_id="t1",
            **{"retain_valid_ndcg@20": 0.0931, "retain_test_ndcg@20": 0.09825}),
        rec("tru", 101, ks=0.5, params='{"lr": 0.01}', sweep="s", split="valid", trial_id="t1",
            **{"retain_valid_ndcg@20": 0.0951, "retain_test_ndcg@20": None}),
        rec("tru", 0, params='{"lr": 0.01}', sweep="s", split="test")])
    pts = trial_points(tidy(frame))
    assert len(pts) == 1 and "retain_test_ndcg@20" not in pts
    row = pts.iloc[0]
    assert row["retain_valid_ndcg@20"] == pytest.approx(0.0941) and row["forget_ks"] == pytest.approx(0.4)
    assert row["seeds"] == 2 and bool(row["front"])  # re-evaluated on report seeds: on the validation front
    ref = trial_references(tidy(frame)).iloc[0]
    assert ref["original_retain_valid_ndcg@20"] == pytest.approx(0.125) and ref["retrain_forget_ks"] == 0.0


@pytest.mark.cluster  # Ray Data's start-up: make test-cluster
def test_ray_data_summarises_the_configurations_exactly_as_pandas(ray_local, records):
    """Two cells, several seeds, a NaN field (one seed: zero-width interval) and an error
    record: the table Ray Data's groupby builds equals the pandas one, column for column."""
    more = pd.concat([records, records.assign(regime="item", seed=records["seed"] + 10)], ignore_index=True)
    more.loc[3, "privleak"] = float("nan")
    tidied = tidy(more)
    by_pandas, by_ray = method_table(tidied), method_table(tidied, "ray")
    assert len(by_pandas) == 10 and by_pandas["seeds"].max() == 2
    pd.testing.assert_frame_equal(by_pandas, by_ray)
