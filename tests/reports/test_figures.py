import pandas as pd
import pytest

from reports.figures import OUTLINE, cell_figure, trial_figure
from reports.tables import method_table, points, tidy
from tests.reports.conftest import rec


def test_a_marker_exactly_under_another_is_offset_and_outlined():
    # two methods with identical figures, the second exactly on the first
    pts = points(method_table(tidy(pd.DataFrame([rec("graph_edit", 0, 0.14, 0.3), rec("redraw", 0, 0.14, 0.3),
                                                  rec("mmrecun", 0, 0.12, 0.1)]))))
    ref = {"original_forget_ks": 0.6, "original_retain_test_ndcg@20": 0.14, "retrain_forget_ks": 0.0,
           "retrain_retain_test_ndcg@20": 0.13}
    fig = cell_figure(("tiny", "lightgcn", "user"), pts, pts.iloc[0:0], ref)
    first, second = (next(t for t in fig.data if t.name == n) for n in ("graph_edit", "redraw"))
    assert first.x[0] == pytest.approx(0.3) and second.x[0] > first.x[0]  # moved right, not hidden
    assert second.y[0] == first.y[0] == pytest.approx(0.14)
    assert "drawn offset" in second.hovertext[0] and "drawn offset" not in first.hovertext[0]
    assert first.marker.line.width == OUTLINE["width"]
    other = next(t for t in fig.data if t.name == "mmrecun")
    assert other.x[0] == pytest.approx(0.1) and "drawn offset" not in other.hovertext[0]


def test_coinciding_trials_are_offset_too():
    trials = pd.DataFrame({"method": ["tru", "tru"], "trial_id": ["a", "b"], "params": ["{}", "{}"], "seeds": [1, 1],
                           "forget_ks": [0.2, 0.2], "retain_valid_ndcg@20": [0.1, 0.1], "front": [False, False]})
    fig = trial_figure(("tiny", "lightgcn", "user"), trials, {"original_forget_ks": 0.5,
                                                              "original_retain_valid_ndcg@20": 0.12,
                                                              "retrain_forget_ks": 0.0,
                                                              "retrain_retain_valid_ndcg@20": 0.11})
    dots = next(t for t in fig.data if t.name == "tru trials")
    assert dots.x[0] == pytest.approx(0.2) and dots.x[1] > dots.x[0]
