"""The report page: one self-contained HTML file (plotly.js embedded once; no network).

``write_report(store_folder, path, png_folder=None)`` reads the results store, builds the
tables (:mod:`reports.tables`) and figures (:mod:`reports.figures`), and writes the page
atomically. Every string taken from records (method names, params, errors) is escaped.
``png_folder``: one PNG per figure through kaleido, when a Chromium is installed.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd
from plotly.offline import get_plotlyjs

from harness.core.errors import UserError
from harness.distributed.store import ResultsStore
from reports.figures import cell_figures
from reports.pareto import REFERENCE
from reports.tables import (CELL, FIELDS, fronts, hypervolumes, method_table, points, reference_rows, references,
                            tidy)

STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0 24px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}.note{color:#555;font-size:13px}"""


def _value(r: dict, field: str) -> str:
    """``mean`` of one table cell, with its 95% t-interval ``[low, high]`` when seeds > 1."""
    digits = 1 if field in ("unlearn_seconds", "speedup") else 4 if field.startswith(("retain_", "forget_recall", "forget_gap")) else 3
    mean = r.get(field, float("nan"))
    low, high = r.get(f"{field}_low", float("nan")), r.get(f"{field}_high", float("nan"))
    if r["seeds"] > 1 and pd.notna(low) and pd.notna(high):
        return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
    return f"{mean:.{digits}f}"


def _table_html(rows: pd.DataFrame, hv: pd.DataFrame) -> str:
    head = ["configuration", "seeds"] + list(FIELDS.values()) + ["hypervolume"]
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    volumes = dict(zip(hv["method"], hv["hypervolume"]))
    for r in rows.to_dict("records"):
        reference = pd.notna(r.get("reference")) and bool(r.get("reference"))
        style = ' style="font-style:italic;background:#fafafa"' if reference else ""
        cells = [f'<td title="{html.escape(str(r["params"]))}">{html.escape(str(r["label"]))}</td>', f"<td>{r['seeds']}</td>"]
        cells += [f"<td>{_value(r, field)}</td>" for field in FIELDS]
        cells.append("<td></td>" if reference else f"<td>{volumes.get(r['method'], float('nan')):.4f}</td>")
        out.append(f"<tr{style}>" + "".join(cells) + "</tr>")
    return "\n".join(out + ["</table>"])


def _in(frame: pd.DataFrame, cell: tuple) -> pd.DataFrame:
    return frame[(frame[CELL] == pd.Series(cell, index=CELL)).all(axis=1)] if not frame.empty else frame


def build_page(frame: pd.DataFrame, title: str) -> tuple[str, list]:
    """The HTML text and the ``(cell, figure)`` list of the records in ``frame``."""
    records = tidy(frame)
    if records.empty:
        raise UserError("no successful records to report")
    table, ref_rows = method_table(records), reference_rows(records)
    pts = points(table)
    front, hv, refs = fronts(pts), hypervolumes(pts), references(records)
    trials = records[records["kind"] == "trial"]
    figures = cell_figures(pts, front, trials, refs)
    errors = int((frame["status"] != "ok").sum())
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p class='note'>{len(frame)} records ({errors} with errors, not shown). Each cell: the mean over "
             "report seeds and, with more than one seed, its 95% Student-t interval [low, high] "
             "(mean &plusmn; t<sub>0.975, n-1</sub> &middot; std / &radic;n). forget KS: the KS statistic of the "
             "deleted pairs' rank percentiles against the retrained model's (0 = as retraining); forget gap@20: 0 is "
             "the retrained model, below 0 over-forgotten; PrivLeak: 0 is the retrained model, and since the attack "
             "learns either direction, above 0 is distinguishable from retraining (still remembered or buried: the "
             "forget gap says which), below 0 is noise. "
             f"Hypervolume of each method's points in (test NDCG@20, forget KS) against the reference point "
             f"(NDCG {REFERENCE[0]:g}, KS {REFERENCE[1]:g}), the same for every method. Reference rows (italic): the "
             "original, the retrained model and a second retrain (other seed, same retained data: the noise floor). "
             "Sweep trials are faint dots; only configurations on a sweep's validation front, re-evaluated on "
             "report seeds, enter the tables.</p>"]
    for index, (cell, fig) in enumerate(figures):
        ref = refs.iloc[index]
        parts.append(f"<h2>{' / '.join(html.escape(str(c)) for c in cell)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{index}"))
        parts.append(f"<p class='note'>retrain: test N@20 {ref['retrain_retain_test_ndcg@20']:.4f}, mia_auc "
                     f"{ref['retrain_mia_auc']:.3f}; noise floor (retrain2): forget KS {ref['retrain2_forget_ks']:.3f}, "
                     f"test N@20 {ref['retrain2_retain_test_ndcg@20']:.4f}; original: forget KS "
                     f"{ref['original_forget_ks']:.3f}, mia_auc {ref['original_mia_auc']:.3f}</p>")
        parts.append(_table_html(pd.concat([_in(ref_rows, cell), _in(table, cell)], ignore_index=True), _in(hv, cell)))
    parts.append("</body></html>")
    return "\n".join(parts), figures


def write_report(store_folder: str | Path, path: str | Path | None = None, png_folder: str | Path | None = None) -> Path:
    """Write the report of the store in ``store_folder`` to ``path`` (default
    ``store_folder/_report.html``); returns the path."""
    store = ResultsStore(store_folder)
    if not store.files():
        raise UserError(f"{store_folder}: no results store here (no record files)")
    path = Path(path) if path else Path(store_folder) / "_report.html"
    text, figures = build_page(store.read(), f"tru-harness report: {Path(store_folder).resolve().name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False, encoding="utf-8") as f:
        f.write(text)
    os.chmod(f.name, 0o644)
    os.replace(f.name, path)
    if png_folder is not None:
        write_pngs(figures, Path(png_folder))
    return path


def write_pngs(figures: list, folder: Path) -> int:
    """One PNG per figure through kaleido; without a Chromium, say so in one line."""
    if not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome", "chrome")):
        print("tru: no Chromium found: PNG images skipped (the HTML report is written)")
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    for index, (cell, fig) in enumerate(figures):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(str(c) for c in cell))
        fig.write_image(folder / f"{index:02d}-{name}.png", width=900, height=460)
    return len(figures)
