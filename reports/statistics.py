"""Statistics over report seeds (pure functions; numpy, pandas and scipy only).

* :func:`interval`: mean, sample std and the two-sided 95% Student-t interval of the mean.
* :func:`paired_wins`: per objective, on how many shared seeds one configuration beats another.
* :func:`wins`: whether one interval is better than another with no overlap.
* :func:`badness` / :func:`badness_interval`: a figure and its interval as "lower is better".
* :func:`markdown_table`: ``mean [low, high]`` cells for a Markdown table.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95


def interval(values) -> dict:
    """``{mean, std, low, high, n}`` of ``values`` after dropping NaNs.

    ``std`` has ``ddof = 1`` (0 for one value); the interval is
    ``mean ± t.ppf(0.975, n - 1) * std / sqrt(n)``, the two-sided 95% Student-t interval
    of the mean (``low = high = mean`` for one value; all NaN for none).
    """
    x = pd.Series(values, dtype=float).dropna().to_numpy()
    n = len(x)
    if n == 0:
        return {"mean": math.nan, "std": math.nan, "low": math.nan, "high": math.nan, "n": 0}
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * std / math.sqrt(n) if n > 1 else 0.0
    return {"mean": mean, "std": std, "low": mean - half, "high": mean + half, "n": n}


def _column(frame: pd.DataFrame, field: str) -> pd.Series:
    """The per-seed value of ``field`` (``abs:NAME``: ``|NAME|``); the mean when a seed repeats."""
    name = field[4:] if field.startswith("abs:") else field
    values = frame[name].astype(float)
    values = values.abs() if field.startswith("abs:") else values
    return values.groupby(frame["seed"]).mean()


def paired_wins(a: pd.DataFrame, b: pd.DataFrame, objectives: list[tuple[str, str]]) -> dict[str, tuple[int, int]]:
    """Per ``(field, mode)``: ``(seeds where a is strictly better than b, paired seeds)``.

    ``a`` and ``b`` are the records of two configurations in one cell, paired on ``seed``
    (the seeds where both have a non-NaN value). ``mode`` ``"max"``: larger is better,
    ``"min"``: smaller. ``field`` ``abs:NAME`` compares ``|NAME|`` (e.g. ``abs:privleak``:
    closer to the retrained model's 0 on either side). Ties are no win for either.
    """
    out = {}
    for field, mode in objectives:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        pair = pd.concat([_column(a, field).rename("a"), _column(b, field).rename("b")], axis=1, join="inner").dropna()
        better = pair["a"] > pair["b"] if mode == "max" else pair["a"] < pair["b"]
        out[field] = (int(better.sum()), int(len(pair)))
    return out


def wins(a_stats: dict, b_stats: dict, mode: str) -> bool:
    """Whether ``a`` beats ``b`` (two :func:`interval` results): their 95% intervals do
    not overlap and ``a`` is on the better side, i.e. ``a.low > b.high`` when
    ``mode = "max"``, ``a.high < b.low`` when ``mode = "min"``, and with ``"abs"``
    (nearer 0) ``a``'s :func:`badness_interval` below ``b``'s. Touching intervals
    and NaN intervals are no win. This is stricter than a test of the difference of means,
    on purpose: a claimed win should survive any reading of the intervals."""
    return bool(badness_interval(a_stats, mode)[1] < badness_interval(b_stats, mode)[0])


def badness(value: float, better: str) -> float:
    """``value`` as "lower is better": ``-value`` (``better = "max"``), ``value`` (``"min"``)
    or ``|value|`` (``"abs"``: nearer 0 is better, e.g. PrivLeak)."""
    if better == "max":
        return -value
    if better == "min":
        return value
    if better == "abs":
        return abs(value)
    raise ValueError(f"better must be 'max', 'min' or 'abs', got {better!r}")


def badness_interval(stats: dict, better: str) -> tuple[float, float]:
    """An :func:`interval` result as an interval ``(low, high)`` of :func:`badness`; with
    ``"abs"``, an interval spanning 0 has badness from 0 to its farther end."""
    low, high = stats["low"], stats["high"]
    if better == "max":
        return -high, -low
    if better == "min":
        return low, high
    if better != "abs":
        raise ValueError(f"better must be 'max', 'min' or 'abs', got {better!r}")
    if low <= 0 <= high:
        return 0.0, max(-low, high)
    return min(abs(low), abs(high)), max(abs(low), abs(high))


def _cell(row: dict, field: str, digits: int) -> str:
    mean_key = f"{field}_mean" if f"{field}_mean" in row else field
    if f"{field}_low" in row and mean_key in row:
        mean, low, high = (float(row[k]) for k in (mean_key, f"{field}_low", f"{field}_high"))
        if np.isnan(low) or np.isnan(high):
            return f"{mean:.{digits}f}"
        return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
    value = row.get(field, "")
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value).replace("|", "\\|")


def markdown_table(rows: pd.DataFrame, columns: dict[str, str], digits: int = 3) -> str:
    """A Markdown table of ``rows``: one column per ``field: header`` of ``columns``.

    A field with ``FIELD_low`` and ``FIELD_high`` columns is shown ``mean [low, high]``,
    the mean read from ``FIELD_mean`` (or ``FIELD``, as :func:`reports.tables.method_table`
    names it); a NaN bound shows the mean alone. Other fields: floats with ``digits``
    decimals, anything else as text (``|`` escaped).
    """
    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    for row in rows.to_dict("records"):
        lines.append("| " + " | ".join(_cell(row, field, digits) for field in columns) + " |")
    return "\n".join(lines)
