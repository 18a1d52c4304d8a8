"""Plotly figures of a report: one retain/forget scatter per (dataset, backbone, regime)."""

from __future__ import annotations

import html
import math

import pandas as pd
import plotly.graph_objects as go

from reports.tables import CELL, X, Y, method_order

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39"]
#: the reference markers: record prefix, legend name, marker symbol
REFERENCE_MARKERS = (("retrain", "retrain (reference)", "star"), ("original", "original (reference)", "x"),
                     ("retrain2", "retrain2 (noise floor)", "diamond-open"))


def _figures(r: dict) -> str:
    """``test N@20 …, forget KS …, PrivLeak …, agreement@20 …`` of a point (or record)."""
    return (f"test N@20 {r.get(Y, math.nan):.4f}, forget KS {r.get(X, math.nan):.4f}, "
            f"PrivLeak {r.get('privleak', math.nan):.3f}, agreement@20 {r.get('agreement@20', math.nan):.3f}")


def _hover(frame: pd.DataFrame) -> list[str]:
    return [
        f"{html.escape(str(r['label']))}<br>params: {html.escape(str(r['params']))}<br>seeds: {r['seeds']}"
        f"<br>{_figures(r)}"
        for r in frame.to_dict("records")
    ]


def _reference(ref: dict, who: str) -> dict:
    return {field: ref.get(f"{who}_{field}", math.nan) for field in (X, Y, "privleak", "agreement@20", "mia_auc")}


def cell_figure(cell: tuple, pts: pd.DataFrame, front: pd.DataFrame, trials: pd.DataFrame, ref: dict) -> go.Figure:
    """Test NDCG@20 (up) against forget KS (left: the deleted pairs ranked as retraining
    ranks them): each configuration a marker, each method's front a step line, every
    sweep trial a faint dot; the retrained model (star, KS 0), the original (x) and the
    second retrain (open diamond, the noise floor) as reference markers, and a shaded
    band from KS 0 to the noise floor's KS (distances retraining itself shows)."""
    fig = go.Figure()
    methods = sorted(pts["method"].unique(), key=method_order)
    colour = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(methods)}
    floor = ref.get(f"retrain2_{X}", math.nan)
    if isinstance(floor, float) and math.isfinite(floor) and floor > 0:
        fig.add_vrect(x0=0.0, x1=floor, fillcolor="#888", opacity=0.15, line_width=0, layer="below")
    for method in methods:
        mine = pts[pts["method"] == method]
        fig.add_trace(go.Scatter(
            x=mine[X], y=mine[Y], mode="markers", name=html.escape(method), legendgroup=method,
            marker={"size": 10, "color": colour[method], "symbol": "diamond" if method.startswith("tru") else "circle"},
            hovertext=_hover(mine), hoverinfo="text"))
        line = front[front["method"] == method]
        if len(line) > 1:
            fig.add_trace(go.Scatter(x=line[X], y=line[Y], mode="lines", line={"shape": "hv", "color": colour[method]},
                                     legendgroup=method, showlegend=False, hoverinfo="skip"))
    if not trials.empty:
        for method, group in trials.groupby("method"):
            fig.add_trace(go.Scatter(
                x=group[X], y=group[Y], mode="markers", name=html.escape(f"{method} sweep trials"),
                marker={"size": 5, "color": colour.get(method, "#999"), "opacity": 0.35},
                hovertext=[f"{html.escape(method)} trial {html.escape(str(r['trial_id']))}<br>params: "
                           f"{html.escape(str(r['params']))}<br>seed {r['seed']}<br>{_figures(r)}"
                           for r in group.to_dict("records")],
                hoverinfo="text"))
    for who, name, symbol in REFERENCE_MARKERS:
        figures = _reference(ref, who)
        if not (math.isfinite(figures[X]) and math.isfinite(figures[Y])):
            continue  # no second retrain on development seeds
        fig.add_trace(go.Scatter(
            x=[figures[X]], y=[figures[Y]], mode="markers", name=name,
            marker={"size": 14, "symbol": symbol, "color": "black"},
            hovertext=[f"{name}: {_figures(figures)}, mia_auc {figures['mia_auc']:.3f}"], hoverinfo="text"))
    title = " / ".join(html.escape(str(c)) for c in cell)
    fig.update_layout(title=title, xaxis_title="forget KS vs retraining (lower = ranks deleted pairs as retraining does)",
                      yaxis_title="retained test NDCG@20", template="plotly_white", height=460,
                      margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return fig


def cell_figures(pts, front, trials, refs) -> list[tuple[tuple, go.Figure]]:
    """One figure per cell, in the order of ``refs``."""
    out = []
    for ref in refs.to_dict("records"):
        cell = tuple(ref[c] for c in CELL)
        select = lambda f: f[(f[CELL] == pd.Series(cell, index=CELL)).all(axis=1)] if not f.empty else f  # noqa: E731
        out.append((cell, cell_figure(cell, select(pts), select(front), select(trials), ref)))
    return out
