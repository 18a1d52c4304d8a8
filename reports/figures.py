"""Plotly figures of a report: per (dataset, backbone, regime) one retain/forget scatter
on report seeds (test figures) and, where a sweep ran, one of its trials on development
seeds (validation figures only: a trial is never drawn at its test figures).

Every marker has an outline, and a marker that would sit exactly on an earlier one (the
same figures: a method that changes nothing sits on the original) is drawn a little to
the right (:func:`_spread`) and says so in its hover text, so none is hidden."""

from __future__ import annotations

import html
import math

import pandas as pd
import plotly.graph_objects as go

from reports.tables import CELL, VALID_Y, X, Y, method_order

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


#: outline of every marker, so touching markers stay apart
OUTLINE = {"width": 1.2, "color": "white"}


def _spread(xs: list[float], ys: list[float], width: float) -> tuple[list[float], list[bool]]:
    """``xs`` with each point that coincides (to 6 decimals) with an earlier one moved
    right by ``width`` per earlier copy, and which were moved."""
    seen: dict[tuple, int] = {}
    out, moved = [], []
    for x, y in zip(xs, ys):
        key = (round(float(x), 6), round(float(y), 6)) if math.isfinite(x) and math.isfinite(y) else None
        copies = seen.get(key, 0) if key else 0
        if key:
            seen[key] = copies + 1
        out.append(x + copies * width)
        moved.append(copies > 0)
    return out, moved


def _offset_step(xs: list[float]) -> float:
    finite = [x for x in xs if math.isfinite(x)]
    span = (max(finite) - min(finite)) if finite else 0.0
    return 0.012 * (span if span > 0 else 1.0)


def _reference(ref: dict, who: str) -> dict:
    return {field: ref.get(f"{who}_{field}", math.nan) for field in (X, Y, "privleak", "agreement@20", "mia_auc")}


def _layers(groups: list[dict]) -> list[dict]:
    """``groups`` (traces to draw: ``x``, ``y``, ``hover``) with ``x`` spread (:func:`_spread`)
    over all of them together, in drawing order, and the hover text of moved markers noted."""
    xs = [x for g in groups for x in g["x"]]
    ys = [y for g in groups for y in g["y"]]
    spread, moved = _spread(xs, ys, _offset_step(xs))
    at = 0
    for g in groups:
        n = len(g["x"])
        g["x"] = spread[at:at + n]
        g["hover"] = [h + ("<br>(drawn offset: same figures as another marker)" if m else "")
                      for h, m in zip(g["hover"], moved[at:at + n])]
        at += n
    return groups


def cell_figure(cell: tuple, pts: pd.DataFrame, front: pd.DataFrame, ref: dict) -> go.Figure:
    """Test NDCG@20 (up) against forget KS (left: the deleted pairs ranked as retraining
    ranks them) on report seeds: each configuration a marker, each method's front a step
    line; the retrained model (star, KS 0), the original (x) and the second retrain (open
    diamond, the noise floor) as reference markers, and a shaded band from KS 0 to the
    noise floor's KS (distances retraining itself shows). Sweep trials are not here
    (:func:`trial_figure`: validation figures)."""
    fig = go.Figure()
    methods = sorted(pts["method"].unique(), key=method_order)
    colour = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(methods)}
    floor = ref.get(f"retrain2_{X}", math.nan)
    if isinstance(floor, float) and math.isfinite(floor) and floor > 0:
        fig.add_vrect(x0=0.0, x1=floor, fillcolor="#888", opacity=0.15, line_width=0, layer="below")
    groups = []
    for method in methods:
        mine = pts[pts["method"] == method]
        groups.append({"x": list(mine[X].astype(float)), "y": list(mine[Y].astype(float)), "hover": _hover(mine),
                       "name": html.escape(method), "group": method,
                       "marker": {"size": 10, "color": colour[method], "line": OUTLINE,
                                  "symbol": "diamond" if method.startswith("tru") else "circle"}})
    for who, name, symbol in REFERENCE_MARKERS:
        figures = _reference(ref, who)
        if not (math.isfinite(figures[X]) and math.isfinite(figures[Y])):
            continue  # no second retrain on development seeds
        groups.append({"x": [figures[X]], "y": [figures[Y]], "name": name, "group": name,
                       "hover": [f"{name}: {_figures(figures)}, mia_auc {figures['mia_auc']:.3f}"],
                       "marker": {"size": 14, "symbol": symbol, "color": "black", "line": {"width": 1, "color": "black"}}})
    for index, g in enumerate(_layers(groups)):
        fig.add_trace(go.Scatter(x=g["x"], y=g["y"], mode="markers", name=g["name"], legendgroup=g["group"],
                                 marker=g["marker"], hovertext=g["hover"], hoverinfo="text"))
        line = front[front["method"] == g["group"]]
        if len(line) > 1:
            fig.add_trace(go.Scatter(x=line[X], y=line[Y], mode="lines", line={"shape": "hv", "color": colour[g["group"]]},
                                     legendgroup=g["group"], showlegend=False, hoverinfo="skip"))
    return _laid_out(fig, cell, "report seeds (test)", "retained test NDCG@20", 460)


def trial_figure(cell: tuple, trials: pd.DataFrame, ref: dict) -> go.Figure:
    """A sweep's trials on development seeds at their *validation* figures: validation
    NDCG@20 against forget KS, each trial a dot (the mean over its development seeds),
    trials on the validation front (those re-evaluated on report seeds) filled and
    outlined, the others faint; the original (x) and the retrained model (star) at their
    validation figures."""
    fig = go.Figure()
    methods = sorted(trials["method"].unique(), key=method_order)
    groups = []
    for i, method in enumerate(methods):
        colour = PALETTE[i % len(PALETTE)]
        for on_front in (False, True):
            mine = trials[(trials["method"] == method) & (trials["front"] == on_front)]
            if mine.empty:
                continue
            groups.append({
                "x": list(mine[X].astype(float)), "y": list(mine[VALID_Y].astype(float)),
                "name": html.escape(f"{method} trials" + (" (validation front)" if on_front else "")),
                "group": method,
                "hover": [f"{html.escape(method)} trial {html.escape(str(r['trial_id']))}<br>params: "
                          f"{html.escape(str(r['params']))}<br>development seeds: {r['seeds']}<br>validation N@20 "
                          f"{r[VALID_Y]:.4f}, forget KS {r[X]:.4f}" for r in mine.to_dict("records")],
                "marker": {"size": 9 if on_front else 7, "color": colour, "opacity": 1.0 if on_front else 0.45,
                           "line": {"width": 1.5, "color": "black"} if on_front else OUTLINE}})
    for who, name, symbol in REFERENCE_MARKERS[:2]:
        x, y = ref.get(f"{who}_{X}", math.nan), ref.get(f"{who}_{VALID_Y}", math.nan)
        if math.isfinite(x) and math.isfinite(y):
            groups.append({"x": [x], "y": [y], "name": name, "group": name,
                           "hover": [f"{name}: validation N@20 {y:.4f}, forget KS {x:.4f}"],
                           "marker": {"size": 14, "symbol": symbol, "color": "black",
                                      "line": {"width": 1, "color": "black"}}})
    for g in _layers(groups):
        fig.add_trace(go.Scatter(x=g["x"], y=g["y"], mode="markers", name=g["name"], legendgroup=g["group"],
                                 marker=g["marker"], hovertext=g["hover"], hoverinfo="text"))
    return _laid_out(fig, cell, "sweep trials, development seeds (validation)", "retained validation NDCG@20", 420)


def _laid_out(fig: go.Figure, cell: tuple, what: str, y_title: str, height: int) -> go.Figure:
    """``fig`` with the layout every cell figure shares: title ``cell: what``, forget KS on x."""
    title = " / ".join(html.escape(str(c)) for c in cell)
    fig.update_layout(title=f"{title}: {what}",
                      xaxis_title="forget KS vs retraining (lower = ranks deleted pairs as retraining does)",
                      yaxis_title=y_title, template="plotly_white", height=height,
                      margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return fig


def _select(frame: pd.DataFrame, cell: tuple) -> pd.DataFrame:
    return frame[(frame[CELL] == pd.Series(cell, index=CELL)).all(axis=1)] if not frame.empty else frame


def cell_figures(pts, front, refs) -> list[tuple[tuple, go.Figure]]:
    """One test figure (:func:`cell_figure`) per cell, in the order of ``refs``."""
    out = []
    for ref in refs.to_dict("records"):
        cell = tuple(ref[c] for c in CELL)
        out.append((cell, cell_figure(cell, _select(pts, cell), _select(front, cell), ref)))
    return out


def trial_figures(trials: pd.DataFrame, trial_refs: pd.DataFrame) -> dict[tuple, go.Figure]:
    """``{cell: figure}`` of :func:`trial_figure` for each cell with sweep trials."""
    out = {}
    for ref in trial_refs.to_dict("records"):
        cell = tuple(ref[c] for c in CELL)
        mine = _select(trials, cell)
        if not mine.empty:
            out[cell] = trial_figure(cell, mine, ref)
    return out
