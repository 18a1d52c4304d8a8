"""Plotly figures of a report: one retain/forget scatter per (dataset, backbone, regime)."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go

from reports.tables import CELL, X, Y, method_order

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39"]


def _hover(frame: pd.DataFrame) -> list[str]:
    return [
        f"{html.escape(str(r['label']))}<br>params: {html.escape(str(r['params']))}<br>seeds: {r['seeds']}"
        f"<br>test N@20 {r[Y]:.4f}, forget R@20 {r[X]:.4f}"
        for r in frame.to_dict("records")
    ]


def cell_figure(cell: tuple, pts: pd.DataFrame, front: pd.DataFrame, trials: pd.DataFrame, ref: dict) -> go.Figure:
    """Test NDCG@20 (up) against forget Recall@20 (left is more forgotten): each
    configuration a marker, each method's front a step line, every sweep trial a faint
    dot, the retrained and the original model as reference markers."""
    fig = go.Figure()
    methods = sorted(pts["method"].unique(), key=method_order)
    colour = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(methods)}
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
                hovertext=[f"{html.escape(method)} trial {html.escape(str(t))}<br>params: {html.escape(str(p))}<br>seed {s}"
                           for t, p, s in zip(group["trial_id"], group["params"], group["seed"])],
                hoverinfo="text"))
    for who, symbol in (("retrain", "star"), ("original", "x")):
        fig.add_trace(go.Scatter(
            x=[ref[f"{who}_{X}"]], y=[ref[f"{who}_{Y}"]], mode="markers", name=who + " (reference)",
            marker={"size": 14, "symbol": symbol, "color": "black"},
            hovertext=[f"{who}: test N@20 {ref[f'{who}_{Y}']:.4f}, forget R@20 {ref[f'{who}_{X}']:.4f}, "
                       f"mia_auc {ref[f'{who}_mia_auc']:.3f}"], hoverinfo="text"))
    title = " / ".join(html.escape(str(c)) for c in cell)
    fig.update_layout(title=title, xaxis_title="forget Recall@20 (lower = more forgotten)",
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
