"""The deletion-size curves, figures, cost table and page section (reports/sizes.py)."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from harness.distributed.store import ResultsStore
from reports.page import build_page
from reports.sizes import cost_table, size_curves, size_figures
from tests.reports.conftest import rec

T = 12.7062047  # t_{0.975, 1}: the 95% interval of two seeds is mean ± T * std / sqrt(2) = mean ± T * |a - b| / 2


def sized(method, seed, ratio, pairs, ndcg=0.1, seconds=1.0, retrain_ndcg=0.13, retrain_seconds=100.0, **extra):
    return rec(method, seed, ndcg, regime="user", ratio=ratio, forget_pairs=pairs, unlearn_seconds=seconds,
               retrain_seconds=retrain_seconds, **{"retrain_retain_test_ndcg@20": retrain_ndcg} | extra)


@pytest.fixture
def two_ratios():
    return pd.DataFrame([
        sized("tru", 0, 0.05, 40, 0.10, 2.0, 0.13, 100.0), sized("tru", 1, 0.05, 44, 0.12, 4.0, 0.15, 120.0),
        sized("graph_edit", 0, 0.05, 40, 0.14, 0.0001, 0.13, 100.0),
        sized("graph_edit", 1, 0.05, 44, 0.14, 0.0001, 0.15, 120.0),
        sized("tru", 0, 0.10, 80, 0.08, 5.0, 0.12, 90.0), sized("tru", 1, 0.10, 90, 0.08, 7.0, 0.12, 110.0),
        sized("tru", 2, 0.10, 85, 0.5, 1.0, status="error"),  # failed: not drawn
        sized("tru", 7, 0.10, 85, 0.5, 1.0, sweep="s", split="valid", trial_id="t1"),  # a sweep trial: not drawn
    ])


def test_curve_points_are_means_over_seeds_with_intervals_at_the_mean_forget_set_size(two_ratios):
    curves = size_curves(two_ratios).set_index(["config", "ratio"])
    tru = curves.loc[("tru", 0.05)]
    assert tru["forget_pairs"] == pytest.approx(42.0)  # mean of the four records at ratio 0.05: (40 + 44 + 40 + 44) / 4
    assert tru["seeds"] == 2 and not tru["reference"]
    assert (tru["retain_test_ndcg@20"], tru["retain_test_ndcg@20_low"], tru["retain_test_ndcg@20_high"]) == \
        pytest.approx((0.11, 0.11 - T * 0.01, 0.11 + T * 0.01))
    assert (tru["unlearn_seconds"], tru["unlearn_seconds_low"], tru["unlearn_seconds_high"]) == \
        pytest.approx((3.0, 3.0 - T, 3.0 + T))
    later = curves.loc[("tru", 0.10)]  # the failed record and the sweep trial are left out
    assert later["forget_pairs"] == pytest.approx(85.0) and later["seeds"] == 2
    assert (later["retain_test_ndcg@20"], later["retain_test_ndcg@20_low"]) == pytest.approx((0.08, 0.08))
    assert later["unlearn_seconds"] == pytest.approx(6.0)
    retrain = curves.loc[("retrain reference", 0.05)]  # the reference: retrain's N@20, 0 for KS and PrivLeak, retrain seconds
    assert bool(retrain["reference"]) and retrain["forget_pairs"] == pytest.approx(42.0)
    assert (retrain["retain_test_ndcg@20"], retrain["retain_test_ndcg@20_high"]) == pytest.approx((0.14, 0.14 + T * 0.01))
    assert (retrain["forget_ks"], retrain["forget_ks_low"], retrain["forget_ks_high"]) == (0.0, 0.0, 0.0)
    assert (retrain["privleak"], retrain["privleak_high"]) == (0.0, 0.0)
    assert (retrain["unlearn_seconds"], retrain["unlearn_seconds_low"]) == pytest.approx((110.0, 110.0 - T * 10))
    assert curves.loc[("retrain reference", 0.10), "unlearn_seconds"] == pytest.approx(100.0)


def test_the_figure_draws_those_points_in_four_panels(two_ratios):
    [(cell, fig)] = size_figures(two_ratios)
    assert cell == ("tiny", "lightgcn", "user")
    tru = [t for t in fig.data if t.name == "tru (random)"]
    assert len(tru) == 4 and sum(bool(t.showlegend) for t in tru) == 1  # one trace per panel, one legend entry
    ndcg, ks, privleak, cost = tru
    assert ndcg.x == pytest.approx((42.0, 85.0)) and ndcg.y == pytest.approx((0.11, 0.08))
    assert ndcg.error_y.array == pytest.approx((T * 0.01, 0.0)) and ndcg.mode == "lines+markers"
    assert cost.y == pytest.approx((3.0, 6.0))
    retrain = [t for t in fig.data if t.name == "retrain reference (random)"]
    assert [tuple(t.y) for t in retrain[1:3]] == [(0.0, 0.0), (0.0, 0.0)]
    assert retrain[3].y == pytest.approx((110.0, 100.0))
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis.title.text == "deleted pairs |D_f|"
    assert fig.layout.yaxis4.type == "log" and fig.layout.yaxis.type != "log"


def test_two_selections_are_two_lines_and_one_ratio_is_no_figure():
    frame = pd.DataFrame([sized("tru", 0, r, n, selection=s) for s, k in (("random", 1), ("core", 3))
                          for r, n in ((0.05, 40 * k), (0.1, 80 * k))])
    [(_, fig)] = size_figures(frame)
    legend = [t.name for t in fig.data if t.showlegend]
    assert legend == ["tru (random)", "tru (core)", "retrain reference (random)", "retrain reference (core)"]
    core = next(t for t in fig.data if t.name == "tru (core)")
    assert core.x == pytest.approx((120.0, 240.0)) and core.line.dash == "dash"
    assert size_figures(frame[frame["ratio"] == 0.05]) == []
    with_retrain = pd.concat([frame, frame.assign(method="retrain", unlearn_seconds=50.0)], ignore_index=True)
    legend = [t.name for t in size_figures(with_retrain)[0][1].data if t.showlegend]
    assert "retrain (random)" in legend and "retrain reference (random)" in legend  # a retrain run is its own line


def test_cost_table_numbers(two_ratios):
    lines = cost_table(two_ratios).splitlines()
    assert lines[0].startswith("**tiny / lightgcn**")
    assert lines[2] == "| regime | selection | ratio | \\|D_f\\| | graph_edit s | tru s | retrain s |"
    assert lines[4:] == ["| user | random | 0.05 | 42 | 0.0001 | 3.0 | 110.0 |",
                         "| user | random | 0.1 | 85 | - | 6.0 | 100.0 |"]
    assert cost_table(two_ratios[two_ratios["status"] != "ok"]) == ""


def test_the_page_has_a_deletion_size_section_only_when_ratios_vary(records, two_ratios):
    text, figures = build_page(records, "r")
    assert "Deletion size" not in text and all("deletion size" not in name for name, _ in figures)
    text, figures = build_page(two_ratios, "r")
    assert text.count("<h2>Deletion size</h2>") == 1 and text.index("<h2>Deletion size</h2>") > text.index("<table>")
    # one cell per deletion (its table, front and reference markers of that deletion only), the curves across them
    assert [name for name, _ in figures] == [("tiny", "lightgcn", "user (random 0.05)"),
                                             ("tiny", "lightgcn", "user (random 0.1)"),
                                             ("tiny", "lightgcn", "user (random 0.1)", "trials"),
                                             ("tiny", "lightgcn", "user", "deletion size")]
    assert "<h2>tiny / lightgcn / user (random 0.05)</h2>" in text and ">tru</td>" in text


def _cost_growth():
    spec = importlib.util.spec_from_file_location("cost_growth", Path(__file__).parents[2] / "bench" / "cost_growth.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cost_growth_script(tmp_path, two_ratios, capsys):
    main = _cost_growth().main
    assert main([str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no records" in err
    ResultsStore(tmp_path / "out").append(two_ratios.astype(object).where(two_ratios.notna(), None).to_dict("records"))
    assert main([str(tmp_path / "out")]) == 0
    assert "| user | random | 0.1 | 85 | - | 6.0 | 100.0 |" in capsys.readouterr().out


def test_a_curve_never_averages_records_of_different_code_versions(two_ratios):
    edited = two_ratios.assign(code_version="v1")
    edited.loc[(edited["method"] == "tru") & (edited["seed"] == 1), "code_version"] = "v2"  # seed 1 re-run after an edit
    configs = set(size_curves(edited)["config"])
    assert {"tru [code=v1]", "tru [code=v2]"} <= configs and "tru" not in configs
