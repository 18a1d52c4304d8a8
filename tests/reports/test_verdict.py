import math

import pytest

from reports.statistics import badness, badness_interval
from reports.verdict import FIGURES, cell_verdict, dominated_by, standing, verdict_markdown


def iv(mean, half=0.01, n=3):
    return {"mean": mean, "std": half, "low": mean - half, "high": mean + half, "n": n}


def method(ndcg=0.14, ks=0.2, privleak=0.05, agreement=0.6, half=0.01, speedup=100.0):
    return {"retain_test_ndcg@20": iv(ndcg, half), "forget_ks": iv(ks, half), "abs_privleak": iv(privleak, half),
            "agreement@20": iv(agreement, half), "log_speedup": iv(math.log(speedup), 0.1),
            "unlearn_seconds": iv(1.0, 0.1)}


def test_badness_turns_every_figure_into_lower_is_better():
    assert badness(0.3, "max") == -0.3 and badness(0.3, "min") == 0.3 and badness(-0.3, "abs") == 0.3
    assert badness_interval(iv(0.2, 0.05), "max") == pytest.approx((-0.25, -0.15))
    assert badness_interval(iv(0.02, 0.05), "abs") == pytest.approx((0.0, 0.07))  # spans 0: from 0 to the far end
    assert badness_interval(iv(-0.2, 0.05), "abs") == pytest.approx((0.15, 0.25))
    with pytest.raises(ValueError):
        badness(0.1, "up")


def test_standing_reads_the_direction_of_each_figure():
    best = iv(0.15, 0.01)  # [0.14, 0.16]
    assert standing(iv(0.16), best, "max") == "better"
    assert standing(iv(0.145), best, "max") == "within"
    assert standing(iv(0.13), best, "max") == "short"
    assert standing(iv(0.13), best, "min") == "better"  # the same numbers, the other direction
    assert standing(iv(0.17), best, "min") == "short"
    # PrivLeak: -0.30 is farther from 0 than the baseline's whole interval, although it is "lower"
    assert standing(iv(-0.30), iv(0.10, 0.08), "abs") == "short"
    assert standing(iv(-0.30), iv(0.10, 0.08), "min") == "better"
    assert standing(iv(-0.05), iv(0.10, 0.08), "abs") == "better"
    assert standing(iv(0.16, n=1), best, "max") == "-"  # one seed judges nothing


def test_domination_needs_every_mean_as_good_and_one_interval_clear():
    tru = method(ndcg=0.14, ks=0.20)
    assert dominated_by({"tru": tru, "finetune": method(ndcg=0.17, ks=0.20)}) == ["finetune"]
    # better N@20 beyond the interval, but a worse mean KS: a trade-off, not domination
    assert dominated_by({"tru": tru, "finetune": method(ndcg=0.17, ks=0.205)}) == []
    # as good everywhere but never clear of TRU's interval: within the noise
    assert dominated_by({"tru": tru, "finetune": method(ndcg=0.145, ks=0.20)}) == []


def test_cell_verdict_marks_wins_losses_and_the_goal():
    stats = {"tru": method(ndcg=0.14, ks=0.10), "finetune": method(ndcg=0.145, ks=0.40),
             "mmrecun": method(ndcg=0.10, ks=0.30)}
    v = cell_verdict(stats, "finetune")  # one best baseline for every figure
    n, ks = v["figures"]["retain_test_ndcg@20"], v["figures"]["forget_ks"]
    assert (n["best"], n["standing"], n["win"], n["loss"]) == ("finetune", "within", False, False)
    assert (ks["best"], ks["standing"], ks["win"]) == ("finetune", "better", True)
    assert v["goal"] and v["dominated_by"] == [] and v["best"] == "finetune"
    worse = cell_verdict(stats | {"tru": method(ndcg=0.12, ks=0.10)}, "finetune")
    assert worse["figures"]["retain_test_ndcg@20"]["standing"] == "short"
    assert worse["figures"]["retain_test_ndcg@20"]["loss"] and not worse["goal"]
    against_mmrecun = cell_verdict(stats, "mmrecun")
    assert against_mmrecun["figures"]["retain_test_ndcg@20"]["standing"] == "better"  # the comparator decides
    assert cell_verdict({"tru": method()}, None) == {}  # no baseline: nothing to judge
    assert not cell_verdict(stats, "tru-v2")["known"]  # not a baseline: no comparator


def test_the_markdown_counts_cells_and_marks_ablations():
    good = {"tru": method(ks=0.1), "finetune": method(ks=0.4), "tru-no-gate": method(ks=0.3),
            "mmrecun": method(ks=0.35), "tru-v2": method(ks=0.6)}
    bad = {"tru": method(ndcg=0.10, speedup=30.0), "finetune": method(ndcg=0.14), "mmrecun": method(ndcg=0.14)}
    text = verdict_markdown([("a / mgcn / user", good, "finetune", None), ("b / mgcn / item", bad, "finetune", None)])
    assert "Goal met (better or within on all four figures): 1 of 2 cells" in text
    assert "Dominated beyond the interval: 1 cells**: b / mgcn / item by finetune, mmrecun" in text
    assert "Short of 50x: b / mgcn / item." in text
    ks_ablation = text.split("## Ablations")[1].split("### forget KS")[1].split("###")[0]
    assert "| a / mgcn / user | 0.100 | 0.300 ▼ | 0.350 ▼ |" in ks_ablation  # gate off: KS worse beyond the noise
    assert "0.600 [0.590, 0.610]" in text  # TRU v2 beside them, with its interval
    assert verdict_markdown([("c", {"finetune": method()}, "finetune", None)]) == ""
    assert [f for f, _, _ in FIGURES] == ["retain_test_ndcg@20", "forget_ks", "abs_privleak", "agreement@20"]


def test_methods_are_judged_on_the_same_report_seeds_only():
    stats = {"tru": method(ndcg=0.10), "finetune": method(ndcg=0.14), "mmrecun": method(ndcg=0.11)}
    full = {0, 1, 2}
    # finetune failed on seed 2: not judged, so TRU's N@20 stands against mmrecun's
    v = cell_verdict(stats, "finetune", seeds={"tru": full, "finetune": {0, 1}, "mmrecun": full}, report_seeds=full)
    assert v["incomplete"] == ["finetune"] and v["best"] is None and not v["known"]  # its comparator is not judged
    assert v["figures"]["retain_test_ndcg@20"]["standing"] == "-"
    lost = cell_verdict(stats, "mmrecun", seeds={"tru": {0, 1}, "finetune": full, "mmrecun": full}, report_seeds=full)
    assert not lost["known"] and not lost["goal"]  # TRU missing a seed: the cell is not judged
    text = verdict_markdown([("a", stats, "mmrecun", {"tru": full, "finetune": {0, 1}, "mmrecun": full})], full)
    assert "| a |" in text and "| finetune |" in text.split("| goal | dominated by | incomplete |")[1].split("###")[0]


def test_tru_v2_and_the_ablations_are_shown_on_the_same_report_seeds_only():
    full = {0, 1, 2}
    stats = {"tru": method(ks=0.1), "finetune": method(ks=0.4), "tru-no-gate": method(ks=0.3), "tru-v2": method(ks=0.6)}
    seeds = {"tru": full, "finetune": full, "tru-no-gate": {0, 1}, "tru-v2": {1, 2}}
    text = verdict_markdown([("a", stats, "finetune", seeds), ("b", stats, "finetune", {m: full for m in stats})], full)
    ks_ablation = text.split("## Ablations")[1].split("### forget KS")[1].split("###")[0]
    assert "| a | 0.100 | - |" in ks_ablation  # tru-no-gate lacks seed 2: not beside TRU
    assert "| a | 0.100 [0.090, 0.110] | finetune | 0.400 [0.390, 0.410] | better (win) | - |" in text  # nor TRU v2
    everything = verdict_markdown([("a", stats, "finetune", {m: full for m in stats})], full)
    assert "0.300 ▼" in everything and "0.600 [0.590, 0.610]" in everything
