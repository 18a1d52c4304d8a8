import pytest

from reports.tables import fronts, hypervolumes, method_table, points, references, tidy


def test_table_means_stds_labels_and_order(records):
    table = method_table(tidy(records))
    assert list(table["label"]) == ["graph_edit", "mmrecun", "tru", "tru front #1", "tru-no-gate"]
    row = table.set_index("label").loc["graph_edit"]
    assert row["seeds"] == 2
    assert row["retain_test_ndcg@20"] == pytest.approx(0.141)
    assert row["retain_test_ndcg@20_std"] == pytest.approx(0.0014142, rel=1e-4)
    assert row["mia_gap"] == pytest.approx(0.3)
    assert table.set_index("label").loc["tru-no-gate", "retain_test_ndcg@20_std"] == 0.0  # one seed
    assert "boom" not in set(table["params"])  # error records are not in tables


def test_trials_stay_out_of_tables_and_fronts(records):
    recs = tidy(records)
    assert set(recs.loc[recs["trial_id"] == "t1", "kind"]) == {"trial"}
    assert "0.02" not in " ".join(method_table(recs)["params"])


def test_each_method_front_drops_its_dominated_configuration(records):
    front = fronts(points(method_table(tidy(records))))
    tru = front[front["method"] == "tru"]
    assert list(tru["label"]) == ["tru"]  # (0.136, 0.11) dominates the front's (0.12, 0.15)
    assert set(front["method"]) == {"graph_edit", "mmrecun", "tru", "tru-no-gate"}


def test_hypervolumes_use_one_reference(records):
    hv = hypervolumes(points(method_table(tidy(records)))).set_index("method")["hypervolume"]
    assert hv["graph_edit"] == pytest.approx(0.141 * (1 - 0.31))
    assert hv["tru"] == pytest.approx(0.136 * (1 - 0.11))


def test_references(records):
    ref = references(tidy(records)).iloc[0]
    assert ref["retrain_retain_test_ndcg@20"] == pytest.approx(0.13) and ref["original_mia_auc"] == pytest.approx(0.9)
