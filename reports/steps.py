"""Sequential deletion: the methods' figures against the number of requests applied.

Pure functions of the records DataFrame (pandas, numpy and Plotly; no torch). They read
the successful ``run`` / ``retest`` records of :func:`reports.tables.tidy` that carry a
``step`` (a regime with ``steps = k``: ``k`` requests applied one after another to the
same model; step ``t``'s record is measured against the model retrained on every pair
deleted by requests ``1 .. t``).

A *line* is one configuration (its table label) of one sequence (dataset, backbone,
regime, selection, ratio). At each step, a field's point is the mean over report seeds
of the seeds' values, with the 95% Student-t interval
``mean ± t_{0.975, n-1} · std / sqrt(n)`` (:func:`reports.statistics.interval`). The
retrained model of each step is the reference line (``retrain reference``): its test
NDCG@20, and 0 for ``forget_ks`` and ``privleak`` (its distances to itself). A method
that drifts from retraining as requests accumulate shows as a line moving away from it.
"""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from reports.figures import OUTLINE, PALETTE, _laid_out
from reports.sizes import REFERENCE, point_rows
from reports.tables import CELL, method_order, tidy

#: the panels: record field -> panel title
PANELS = {"retain_test_ndcg@20": "retained test NDCG@20 (higher is better)",
          "forget_ks": "forget KS vs retraining (0 = as retraining)",
          "privleak": "PrivLeak (0 = as retraining)"}
SEQUENCE = CELL + ["selection", "ratio"]


def step_curves(records: pd.DataFrame) -> pd.DataFrame:
    """One row per sequence, configuration and step, plus the retrained model's rows
    (``config =`` :data:`REFERENCE`): ``seeds`` and per field of :data:`PANELS` its mean
    over seeds, ``_std``, ``_low`` and ``_high``."""
    if "step" not in records:
        return pd.DataFrame()
    shown = tidy(records)
    shown = shown[(shown["kind"] != "trial") & shown["step"].notna()]
    if shown.empty:
        return pd.DataFrame()
    shown = shown.assign(regime=shown["regime_name"], config=shown["label"], step=shown["step"].astype(int))
    rows = [row for key, group in shown.groupby(SEQUENCE + ["step"], sort=False, dropna=False)
            for row in point_rows(dict(zip(SEQUENCE + ["step"], key)), group, PANELS)]
    curves = pd.DataFrame(rows)
    order = [(r["reference"], method_order(r["method"]), r["config"], r["step"]) for r in curves.to_dict("records")]
    return curves.iloc[sorted(range(len(curves)), key=lambda i: order[i])].reset_index(drop=True)


def step_figure(sequence: tuple, curves: pd.DataFrame) -> go.Figure:
    """Three panels against the step: one line per configuration with 95%-interval error
    bars over seeds, the retrained model of each step in black. ``curves``: the rows of
    :func:`step_curves` of this sequence."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=list(PANELS.values()), horizontal_spacing=0.07)
    configs = list(dict.fromkeys(curves.loc[~curves["reference"].astype(bool), "config"]))
    colour = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(configs)} | {REFERENCE: "black"}
    for config, line in curves.groupby("config", sort=False):
        line = line.sort_values("step")
        for panel, field in enumerate(PANELS):
            fig.add_trace(go.Scatter(
                x=line["step"], y=line[field], mode="lines+markers", name=html.escape(config), legendgroup=config,
                showlegend=panel == 0, line={"color": colour[config], "width": 3 if config == REFERENCE else 1.5},
                marker={"size": 7, "color": colour[config], "line": OUTLINE},
                hovertext=[f"{html.escape(config)}<br>step {r['step']}, seeds {r['seeds']}<br>{field} {r[field]:.4g} "
                           f"[{r[f'{field}_low']:.4g}, {r[f'{field}_high']:.4g}]" for r in line.to_dict("records")],
                hoverinfo="text",
                error_y={"type": "data", "visible": True, "array": line[f"{field}_high"] - line[field],
                         "arrayminus": line[field] - line[f"{field}_low"]}),
                row=1, col=panel + 1)
    dataset, backbone, regime, selection, ratio = sequence
    _laid_out(fig, (dataset, backbone, f"{regime} ({selection} {ratio:g} per request)"),
              "sequential requests, report seeds (test), mean and 95% interval", "", 520)
    fig.update_xaxes(title_text="requests applied (step)", dtick=1)
    fig.update_layout(margin={"t": 80}, legend={"orientation": "h", "yanchor": "top", "y": -0.18, "font": {"size": 11}})
    return fig


def step_figures(records: pd.DataFrame) -> list[tuple[tuple, go.Figure]]:
    """``(sequence, figure)`` of :func:`step_figure` for each sequence of requests in ``records``."""
    curves = step_curves(records)
    if curves.empty:
        return []
    return [(tuple(key), step_figure(tuple(key), mine)) for key, mine in curves.groupby(SEQUENCE, sort=False)]
