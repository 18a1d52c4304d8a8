"""The sequential-requests curves, figures and page section (reports/steps.py)."""

import pandas as pd
import pytest

from reports.page import build_page
from reports.steps import step_curves, step_figures
from reports.tables import tidy
from tests.reports.conftest import rec

T = 12.7062047  # t_{0.975, 1}: two seeds' interval is mean ± T * |a - b| / 2


def stepped(method, seed, step, ndcg, ks, retrain_ndcg=0.13):
    return rec(method, seed, ndcg, ks, step=step, forget_pairs=20 * step, ratio=0.01,
               **{"retrain_retain_test_ndcg@20": retrain_ndcg})


@pytest.fixture
def sequence():
    return pd.DataFrame([stepped("tru", s, t, 0.12 - 0.01 * t + 0.002 * s, 0.1 * t + 0.02 * s, 0.13 - 0.001 * t)
                         for s in (0, 1) for t in (1, 2, 3)]
                        + [stepped("sisa", s, t, 0.11, 0.05, 0.13 - 0.001 * t) for s in (0, 1) for t in (1, 2, 3)])


def test_step_points_are_means_over_seeds_with_intervals(sequence):
    curves = step_curves(sequence).set_index(["config", "step"])
    tru = curves.loc[("tru", 3)]  # seeds: ks 0.3 and 0.32; ndcg 0.09 and 0.092
    assert tru["seeds"] == 2 and tru["forget_ks"] == pytest.approx(0.31)
    assert (tru["forget_ks_low"], tru["forget_ks_high"]) == pytest.approx((0.31 - T * 0.01, 0.31 + T * 0.01))
    assert tru["retain_test_ndcg@20"] == pytest.approx(0.091)
    reference = curves.loc[("retrain reference", 2)]  # the step's retrained model: its NDCG, 0 for KS and PrivLeak
    assert reference["retain_test_ndcg@20"] == pytest.approx(0.128) and reference["forget_ks"] == 0.0
    assert list(curves.loc["tru"].index) == [1, 2, 3]


def test_each_step_is_a_cell_of_its_own_in_the_tables(sequence):
    assert sorted(tidy(sequence)["regime"].unique()) == ["user step 1", "user step 2", "user step 3"]


def test_the_figure_and_the_page_section(sequence, records):
    [(key, fig)] = step_figures(sequence)
    assert key == ("tiny", "lightgcn", "user", "random", 0.01)
    tru = [t for t in fig.data if t.name == "tru"]
    assert len(tru) == 3 and tuple(tru[1].x) == (1, 2, 3) and tru[1].y == pytest.approx((0.11, 0.21, 0.31))
    text, figures = build_page(sequence, "r")
    assert text.count("<h2>Sequential requests</h2>") == 1
    assert ("tiny", "lightgcn", "user", "sequential") in [name for name, _ in figures]
    assert "Sequential requests" not in build_page(records, "r")[0] and step_figures(records) == []
