import math

import pandas as pd
import pytest

from reports.statistics import interval, markdown_table, paired_wins, wins


def test_interval_of_one_two_three_by_hand():
    s = interval([1.0, 2.0, 3.0])
    # t(0.975, 2) = 4.302653; half-width 4.302653 * 1 / sqrt(3) = 2.484138
    assert s["mean"] == 2.0 and s["std"] == pytest.approx(1.0) and s["n"] == 3
    assert s["high"] - s["mean"] == pytest.approx(2.4841, abs=1e-4)
    assert s["mean"] - s["low"] == pytest.approx(2.4841, abs=1e-4)


def test_interval_drops_nans_and_handles_one_and_none():
    assert interval([1.0, math.nan, 2.0, 3.0]) == interval([1.0, 2.0, 3.0])
    one = interval([0.5, math.nan])
    assert one == {"mean": 0.5, "std": 0.0, "low": 0.5, "high": 0.5, "n": 1}
    none = interval([math.nan])
    assert none["n"] == 0 and math.isnan(none["mean"]) and math.isnan(none["low"])


def test_interval_of_two_values():
    s = interval(pd.Series([0.0, 2.0]))  # std sqrt(2); t(0.975, 1) = 12.7062; half 12.7062 * sqrt(2) / sqrt(2)
    assert s["std"] == pytest.approx(math.sqrt(2)) and s["high"] == pytest.approx(1 + 12.7062, abs=1e-3)


def frame(seeds, values, column="x"):
    return pd.DataFrame({"seed": seeds, column: values})


def test_paired_wins_pairs_on_seed_and_direction_matters():
    a = frame([0, 1, 2, 3], [0.5, 0.2, 0.9, 0.4])
    b = frame([1, 2, 3, 4], [0.3, 0.9, 0.1, 0.0])  # shared seeds 1, 2, 3: a is 0.2 < 0.3, tie 0.9, 0.4 > 0.1
    assert paired_wins(a, b, [("x", "max")]) == {"x": (1, 3)}
    assert paired_wins(a, b, [("x", "min")]) == {"x": (1, 3)}
    assert paired_wins(b, a, [("x", "max")]) == {"x": (1, 3)}
    c = frame([1, 2, 3], [0.1, 0.1, 0.5])  # a beats c on seeds 1, 2 (max); c beats a on seed 3 only
    assert paired_wins(a, c, [("x", "max")]) == {"x": (2, 3)}
    assert paired_wins(a, c, [("x", "min")]) == {"x": (1, 3)}
    assert paired_wins(c, a, [("x", "max")]) == {"x": (1, 3)}


def test_paired_wins_absolute_fields_and_nans():
    a = pd.DataFrame({"seed": [0, 1, 2], "privleak": [-0.3, 0.1, math.nan], "ks": [0.1, 0.2, 0.3]})
    b = pd.DataFrame({"seed": [0, 1, 2], "privleak": [0.2, 0.2, 0.0], "ks": [0.2, 0.1, 0.4]})
    out = paired_wins(a, b, [("abs:privleak", "min"), ("privleak", "min"), ("ks", "min")])
    assert out["abs:privleak"] == (1, 2)  # |-0.3| > 0.2 on seed 0; 0.1 < 0.2 on seed 1; seed 2 has a NaN
    assert out["privleak"] == (2, 2)  # signed, over-unlearning -0.3 would "win"
    assert out["ks"] == (2, 3)
    with pytest.raises(ValueError, match="mode"):
        paired_wins(a, b, [("ks", "up")])


def test_wins_needs_disjoint_intervals_on_the_better_side():
    high = {"mean": 0.5, "low": 0.45, "high": 0.55}
    low = {"mean": 0.3, "low": 0.25, "high": 0.35}
    touching = {"mean": 0.4, "low": 0.35, "high": 0.45}
    assert wins(high, low, "max") and not wins(low, high, "max")
    assert wins(low, high, "min") and not wins(high, low, "min")
    assert not wins(high, touching, "max") and not wins(touching, low, "max")  # touching is overlap
    assert not wins({"mean": 0.5, "low": math.nan, "high": math.nan}, low, "max")


def test_markdown_table():
    rows = pd.DataFrame([{"label": "tru|x", "ks_mean": 0.1234, "ks_low": 0.1, "ks_high": 0.14667, "n": 3.0},
                         {"label": "one", "ks_mean": 0.2, "ks_low": math.nan, "ks_high": math.nan, "n": 1.0}])
    text = markdown_table(rows, {"label": "configuration", "ks": "forget KS", "n": "seeds"}, digits=2)
    assert text.splitlines() == ["| configuration | forget KS | seeds |", "|---|---|---|",
                                 "| tru\\|x | 0.12 [0.10, 0.15] | 3.00 |", "| one | 0.20 | 1.00 |"]
    # a method_table's mean column is the bare field name
    assert "0.500 [0.400, 0.600]" in markdown_table(pd.DataFrame([{"f": 0.5, "f_low": 0.4, "f_high": 0.6}]), {"f": "F"})
