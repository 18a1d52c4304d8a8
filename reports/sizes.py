"""Deletion size: the methods' figures against the size of the deletion request.

Pure functions of the records DataFrame (pandas, numpy and Plotly; no torch). They read
the successful ``run`` and ``retest`` records of :func:`reports.tables.tidy` (report
seeds only, never a sweep's development trials).

A *line* is one configuration under one selection (random, core, edge), with one point
per deletion ratio. Its name (``config``) is the table label of
:func:`reports.tables.tidy`: the method's name, followed by the parameters that tell its
configurations apart at a deletion, and by the settings or code version that differ
(so a line never averages records measured under different settings). At each (dataset, backbone, regime, selection, ratio):

* ``x = |D_f|`` is the mean of ``forget_pairs`` over the records there. Every method of
  a seed shares one ``D_f`` draw, so the lines of one selection share their x;
* for each field ``f`` of :data:`PANELS`, a seed's value is the mean of its records. The
  point is the mean over seeds, and its error bar is the 95% Student-t interval
  ``mean ± t_{0.975, n-1} · std / sqrt(n)`` (:func:`reports.statistics.interval`; no bar
  for one seed);
* the retrained model is the reference line (``config = "retrain reference"``,
  ``reference`` True; apart from a ``retrain`` method the experiment may run),
  read from the first record of each seed (:func:`reports.tables.reference_values`):
  ``retrain_retain_test_ndcg@20`` for test NDCG@20, 0 for ``forget_ks`` and ``privleak``
  (its distances to itself, :data:`reports.tables.RETRAIN_SELF`), and ``retrain_seconds``
  (the time training it took) for the cost.

:func:`size_figures` draws one four-panel figure per (dataset, backbone, regime) whose
records span more than one ratio. :func:`cost_table` gives the unlearning seconds per
(regime, selection, ratio) as Markdown, beside |D_f| and the retraining seconds.
"""

from __future__ import annotations

import html
import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from reports.figures import OUTLINE, PALETTE, _laid_out
from reports.statistics import markdown_table
from reports.tables import CELL, _summarise, method_order, reference_values, tidy

#: the panels: record field -> panel title (the cost panel has a log y axis)
PANELS = {"retain_test_ndcg@20": "retained test NDCG@20 (higher is better)",
          "forget_ks": "forget KS vs retraining (0 = as retraining)",
          "privleak": "PrivLeak (0 = as retraining)",
          "unlearn_seconds": "cost: unlearn seconds (retrain: retrain seconds), log"}
COST = "unlearn_seconds"
#: selections in drawing and table order, and their line dash and marker symbol
SELECTIONS = ("random", "core", "edge")
DASH = {"random": "solid", "core": "dash", "edge": "dot"}
SYMBOL = {"random": "circle", "core": "square", "edge": "triangle-up"}
POINT = CELL + ["selection", "ratio"]
#: the configuration name of the retrained model's reference rows
REFERENCE = "retrain reference"
COLUMNS = POINT + ["config", "method", "reference", "seeds", "forget_pairs"]


def _seeds(per_seed: dict[str, pd.Series]) -> int:
    """How many seeds have a value in at least one of the fields."""
    return int(pd.concat(per_seed, axis=1).notna().any(axis=1).sum()) if per_seed else 0


def _order(curves: pd.DataFrame) -> pd.Series:
    """Sort key of a curve row: cell (in the records' order, as the page's cells), methods
    (:func:`reports.tables.method_order`, the retrained model last), :data:`SELECTIONS`
    order, |D_f|."""
    cells = [tuple(map(str, c)) for c in curves[CELL].itertuples(index=False)]
    first = {c: i for i, c in enumerate(dict.fromkeys(cells))}
    return pd.Series([(first[c], r["reference"], method_order(r["method"]), r["config"],
                       SELECTIONS.index(r["selection"]) if r["selection"] in SELECTIONS else len(SELECTIONS),
                       str(r["selection"]), r["forget_pairs"]) for c, r in zip(cells, curves.to_dict("records"))],
                     index=curves.index)


def point_rows(point: dict, group: pd.DataFrame, fields) -> list[dict]:
    """The rows of one point of a curve (``group``: its records, with ``config``): per
    configuration and for the retrained model (:data:`REFERENCE`, from each seed's first
    record), ``point`` with ``seeds`` and each field's mean over seeds, ``_std``, ``_low``
    and ``_high`` (a seed's value: the mean of its records)."""
    rows = []
    for (config, method), mine in group.groupby(["config", "method"], sort=False):
        per_seed = {f: mine[f].astype(float).groupby(mine["seed"]).mean() for f in fields}
        rows.append(_summarise(point | {"config": config, "method": method, "reference": False,
                                        "seeds": _seeds(per_seed)}, per_seed))
    retrain = reference_values(group.drop_duplicates("seed").set_index("seed"), "retrain")
    per_seed = {f: retrain.get(f, pd.Series(dtype=float)) for f in fields}
    rows.append(_summarise(point | {"config": REFERENCE, "method": "retrain", "reference": True,
                                    "seeds": _seeds(per_seed)}, per_seed))
    return rows


def size_curves(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, backbone, regime, selection, ratio) and configuration, plus
    the retrained model's row (``config =`` :data:`REFERENCE`, ``reference`` True): ``forget_pairs``
    (x = mean ``forget_pairs`` of the records at that point), ``seeds``, and per field of
    :data:`PANELS` its mean over seeds, ``_std``, ``_low`` and ``_high`` (the 95% t-interval).
    Formulas: the module docstring."""
    shown = tidy(records)
    shown = shown[(shown["kind"] != "trial") & (shown["step"].isna() if "step" in shown else True)]  # single requests
    if shown.empty:
        return pd.DataFrame(columns=COLUMNS)
    shown = shown.assign(regime=shown["regime_name"], config=shown["label"])  # the curve runs across deletions
    rows = []
    for key, group in shown.groupby(POINT, sort=False, dropna=False):
        point = dict(zip(POINT, key)) | {"forget_pairs": group["forget_pairs"].astype(float).mean()}
        rows += point_rows(point, group, PANELS)
    curves = pd.DataFrame(rows)
    return curves.loc[_order(curves).sort_values().index].reset_index(drop=True)


def _hover(line: pd.DataFrame, name: str, field: str) -> list[str]:
    return [f"{html.escape(name)}<br>ratio {r['ratio']:g}, |D_f| {r['forget_pairs']:.0f}, seeds {r['seeds']}<br>"
            f"{field} {r[field]:.4g} [{r[f'{field}_low']:.4g}, {r[f'{field}_high']:.4g}]"
            for r in line.to_dict("records")]


def size_figure(cell: tuple, curves: pd.DataFrame) -> go.Figure:
    """Four panels against x = |D_f| (log): retained test NDCG@20, forget KS, PrivLeak and
    the cost (unlearn seconds, log y). One line per (configuration, selection) with markers
    and 95%-interval error bars over seeds (colour: configuration; dash and marker:
    selection), and the retrained model per selection as the black reference line (its
    test NDCG@20; 0 for forget KS and PrivLeak; its training seconds for the cost).
    ``curves``: the rows of :func:`size_curves` of this cell."""
    fig = make_subplots(rows=2, cols=2, subplot_titles=list(PANELS.values()), horizontal_spacing=0.08,
                        vertical_spacing=0.14)
    configs = list(dict.fromkeys(curves.loc[~curves["reference"].astype(bool), "config"]))
    colour = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(configs)} | {REFERENCE: "black"}
    for (config, selection), line in curves.groupby(["config", "selection"], sort=False, dropna=False):
        line = line.sort_values("forget_pairs")
        name = f"{config} ({selection})"
        width = 3 if config == REFERENCE else 1.5
        for panel, field in enumerate(PANELS):
            fig.add_trace(go.Scatter(
                x=line["forget_pairs"], y=line[field], mode="lines+markers", name=html.escape(name), legendgroup=name,
                showlegend=panel == 0, hovertext=_hover(line, name, field), hoverinfo="text",
                line={"color": colour[config], "dash": DASH.get(selection, "solid"), "width": width},
                marker={"symbol": SYMBOL.get(selection, "circle"), "size": 7, "color": colour[config], "line": OUTLINE},
                error_y={"type": "data", "visible": True, "array": line[f"{field}_high"] - line[field],
                         "arrayminus": line[field] - line[f"{field}_low"]}),
                row=panel // 2 + 1, col=panel % 2 + 1)
    _laid_out(fig, cell, "deletion size, report seeds (test), mean and 95% interval", "", 980)  # panels: subplot titles
    fig.update_xaxes(type="log", title_text="deleted pairs |D_f|")
    fig.update_yaxes(type="log", row=2, col=2)
    fig.update_layout(margin={"t": 80}, legend={"orientation": "h", "yanchor": "top", "y": -0.08, "font": {"size": 11}})
    return fig


def size_figures(records: pd.DataFrame) -> list[tuple[tuple, go.Figure]]:
    """``(cell, figure)`` of :func:`size_figure` for each (dataset, backbone, regime) whose
    successful run/retest records span more than one deletion ratio; none otherwise."""
    curves = size_curves(records)
    return [(tuple(cell), size_figure(tuple(cell), mine)) for cell, mine in curves.groupby(CELL, sort=False)
            if mine["ratio"].nunique() > 1]


def _seconds(value: float) -> str:
    """Seconds for a table: one decimal from 0.1 s, two significant digits below, "-" for none."""
    if not isinstance(value, (int, float)) or math.isnan(value):
        return "-"
    return f"{value:.1f}" if value >= 0.1 else f"{value:.2g}"


def cost_table(records: pd.DataFrame) -> str:
    """The cost growth as Markdown: per (dataset, backbone) a table with one row per
    (regime, selection, ratio): |D_f| (mean ``forget_pairs``), each configuration's mean
    ``unlearn_seconds`` over seeds and the retrained model's mean ``retrain_seconds``
    (:func:`size_curves`). "" when there are no successful run/retest records."""
    curves = size_curves(records)
    blocks = []
    for (dataset, backbone), cell in curves.groupby(["dataset", "backbone"], sort=False):
        configs = list(dict.fromkeys(cell.loc[~cell["reference"].astype(bool), "config"]))
        rows = []
        for (regime, selection, ratio), point in cell.groupby(["regime", "selection", "ratio"], sort=False, dropna=False):
            seconds = dict(zip(point["config"], point[COST]))
            rows.append({"regime": regime, "selection": selection, "ratio": f"{ratio:g}",
                         "forget_pairs": f"{point['forget_pairs'].iloc[0]:.0f}"}
                        | {c: _seconds(seconds.get(c, math.nan)) for c in configs + [REFERENCE]})
        table = pd.DataFrame(rows).sort_values(["regime", "selection", "ratio"], key=_table_order, kind="stable")
        columns = {"regime": "regime", "selection": "selection", "ratio": "ratio", "forget_pairs": "\\|D_f\\|"}
        columns |= {c: f"{c} s" for c in configs} | {REFERENCE: "retrain s"}
        blocks.append(f"**{dataset} / {backbone}**: mean unlearn seconds over report seeds; retrain s: mean "
                      f"retrain_seconds (training the retrained reference)\n\n{markdown_table(table, columns)}")
    return "\n\n".join(blocks)


def _table_order(column: pd.Series) -> pd.Series:
    """Rows by regime, then :data:`SELECTIONS` order, then ratio (numerically)."""
    if column.name == "selection":
        return column.map(lambda s: SELECTIONS.index(s) if s in SELECTIONS else len(SELECTIONS))
    return column.astype(float) if column.name == "ratio" else column.astype(str)
