"""The report page: one self-contained HTML file (plotly.js embedded once; no network).

``write_report(store_folder, path, png_folder=None)`` reads the results store, builds the
tables (:mod:`reports.tables`) and figures (:mod:`reports.figures`), and writes the page
atomically. Every string taken from records (method names, params, errors) is escaped.
``png_folder``: one PNG per figure through kaleido, when a Chromium is installed.

The page opens with the settings block (training epochs and settings, the unlearning
budget, the audit size, each regime's ratio and forget-set size, the code versions, the
dates: :func:`reports.tables.settings_block`) and, for each sweep in the folder, what it
searched (objectives, trials, space, sampler, study path: ``_sweeps/<sweep>.json``,
written by :mod:`tuning.sweep`). Per cell: the test figure and table on report seeds
(configurations labelled with their parameters, the hypervolume once per method), then
the sweep's trials at their validation figures, drawn and tabled. Then, where a cell's
records span more than one deletion ratio, the "Deletion size" section: its figures
against |D_f| (:mod:`reports.sizes`).
"""

from __future__ import annotations

import html
import json
import os
import posixpath
import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import plotly.io as pio
from plotly.offline import get_plotlyjs

from harness.core.errors import UserError
from harness.distributed.store import ResultsStore, local_folder
from harness.storage.locations import is_uri
from reports.figures import cell_figures, trial_figures
from reports.pareto import REFERENCE
from reports.sizes import size_figures
from reports.steps import step_figures
from reports.tables import (CELL, FIELDS, VALID_Y, X, config_labels, fronts, hypervolumes, method_table, points, reference_rows,
                            references, settings_block, tidy, trial_points, trial_references)

#: below this mean unlearning time (seconds) a speedup is a division by ~0 and shows "-"
SPEEDUP_FLOOR = 1e-3

STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0 24px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}.note{color:#555;font-size:13px}
table.settings th,table.settings td{text-align:left}table.hv{margin-top:-16px}"""


def _value(r: dict, field: str) -> str:
    """``mean`` of one table cell, with its 95% t-interval ``[low, high]`` when seeds > 1;
    "-" when there is no value, or for a speedup whose time is ~0 (:data:`SPEEDUP_FLOOR`:
    graph_edit's edit is a division by ~0, not a measured speedup)."""
    digits = 1 if field in ("unlearn_seconds", "speedup") else 4 if field.startswith(("retain_", "forget_recall", "forget_gap", "fairness_")) else 3
    mean = r.get(field, float("nan"))
    if pd.isna(mean) or (field == "speedup" and not r.get("unlearn_seconds", 0.0) >= SPEEDUP_FLOOR):
        return "-"
    low, high = r.get(f"{field}_low", float("nan")), r.get(f"{field}_high", float("nan"))
    if r["seeds"] > 1 and pd.notna(low) and pd.notna(high):
        return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
    return f"{mean:.{digits}f}"


def _table_html(rows: pd.DataFrame) -> str:
    head = ["configuration", "seeds"] + list(FIELDS.values())
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for r in rows.to_dict("records"):
        reference = pd.notna(r.get("reference")) and bool(r.get("reference"))
        style = ' style="font-style:italic;background:#fafafa"' if reference else ""
        cells = [f'<td title="{html.escape(str(r["params"]))}">{html.escape(str(r["label"]))}</td>', f"<td>{r['seeds']}</td>"]
        cells += [f"<td>{_value(r, field)}</td>" for field in FIELDS]
        out.append(f"<tr{style}>" + "".join(cells) + "</tr>")
    return "\n".join(out + ["</table>"])


def _hypervolume_html(hv: pd.DataFrame) -> str:
    """The hypervolume of each method, once (not on each of its rows)."""
    if hv.empty:
        return ""
    cells = "".join(f"<td>{html.escape(str(m))} {v:.4f}</td>" for m, v in zip(hv["method"], hv["hypervolume"]))
    return f"<table class='hv'><tr><th>hypervolume (test N@20, forget KS)</th>{cells}</tr></table>"


def _settings_html(records: pd.DataFrame) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in settings_block(records))
    return f"<h2>settings</h2><table class='settings'>{rows}</table>"


def _sweeps_html(sweeps: list[dict], records: pd.DataFrame) -> str:
    """One line per sweep: method, cell, objectives, trials stored (of those asked), the
    space, the sampler and the study path."""
    if not sweeps:
        return ""
    items = []
    for info in sweeps:
        mine = records[(records["kind"] == "trial") & (records["sweep"] == info.get("sweep"))]
        objectives = ", ".join(f"{o['name']} ({o['mode']})" for o in info.get("objectives", []))
        space = "; ".join(f"{name} {_distribution(d)}" for name, d in info.get("space", {}).items())
        regimes = ", ".join(f"{r.get('regime')} {r.get('ratio')}" for r in info.get("regimes", []))
        items.append(
            f"<li><b>{html.escape(str(info.get('sweep')))}</b>: {html.escape(str(info.get('method')))} on "
            f"{html.escape(str(info.get('dataset')))} / {html.escape(str(info.get('backbone')))} ({html.escape(regimes)}), "
            f"development seeds {html.escape(str(info.get('development_seeds')))}; objectives {html.escape(objectives)}; "
            f"{mine['trial_id'].nunique()} trials stored (asked {html.escape(str(info.get('trials')))}); sampler "
            f"{html.escape(str(info.get('sampler')))} (seed {html.escape(str(info.get('sampler_seed')))}); space: "
            f"{html.escape(space)}; study: <code>{html.escape(str(info.get('study')))}</code></li>")
    return "<h2>sweeps</h2><ul class='note'>" + "".join(items) + "</ul>"


def _distribution(text: str) -> str:
    """An Optuna distribution (its JSON) as ``float [low, high] log`` / ``int [..]`` / ``{choices}``."""
    try:
        d = json.loads(text)
    except (TypeError, ValueError):
        return str(text)
    kind, a = d.get("name", ""), d.get("attributes", {})
    if "choices" in a:
        return "{" + ", ".join(map(str, a["choices"])) + "}"
    log = " log" if a.get("log") else ""
    return f"{'int' if kind.startswith('Int') else 'float'} [{a.get('low'):g}, {a.get('high'):g}]{log}"


def _trials_html(trials: pd.DataFrame, ref: dict) -> str:
    """The trials of a cell at their validation figures (mean over development seeds), the
    original and the retrained model first."""
    head = ["trial", "seeds", "validation N@20", "forget KS", "on validation front", "parameters (those that differ)"]
    out = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for who, label in (("original", "original"), ("retrain", "retrain (reference)")):
        out.append(f"<tr style='font-style:italic;background:#fafafa'><td>{label}</td><td>{ref['seeds']}</td>"
                   f"<td>{ref[f'{who}_{VALID_Y}']:.4f}</td><td>{ref[f'{who}_{X}']:.3f}</td><td></td><td></td></tr>")
    labels = config_labels(list(dict.fromkeys(trials["params"])))
    for r in trials.sort_values(VALID_Y, ascending=False).to_dict("records"):
        out.append(f"<tr><td>{html.escape(str(r['method']))} {html.escape(str(r['trial_id']))}</td><td>{r['seeds']}</td>"
                   f"<td>{r[VALID_Y]:.4f}</td><td>{r[X]:.3f}</td><td>{'yes' if r['front'] else ''}</td>"
                   f"<td style='text-align:left' title=\"{html.escape(str(r['params']))}\">"
                   f"{html.escape(labels[r['params']])}</td></tr>")
    return "\n".join(out + ["</table>"])


def _in(frame: pd.DataFrame, cell: tuple) -> pd.DataFrame:
    return frame[(frame[CELL] == pd.Series(cell, index=CELL)).all(axis=1)] if not frame.empty else frame


def build_page(frame: pd.DataFrame, title: str, sweeps: list[dict] = (), engine: str = "pandas") -> tuple[str, list]:
    """The HTML text and the ``(name, figure)`` list of the records in ``frame``
    (``sweeps``: the ``_sweeps/*.json`` of the folder; ``engine``: who summarises the
    configurations, :func:`reports.tables.method_table`)."""
    records = tidy(frame)
    if records.empty:
        raise UserError("no successful records to report")
    table, ref_rows = method_table(records, engine), reference_rows(records)
    pts = points(table)
    front, hv, refs = fronts(pts), hypervolumes(pts), references(records)
    figures = cell_figures(pts, front, refs)
    trials, trial_refs = trial_points(records), trial_references(records)
    validation = trial_figures(trials, trial_refs)
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
             "forget gap says which), below 0 is noise. A speedup reads \"-\" when the unlearning time is ~0 "
             f"(below {SPEEDUP_FLOOR * 1000:g} ms). "
             f"Hypervolume of each method's points in (test NDCG@20, forget KS) against the reference point "
             f"(NDCG {REFERENCE[0]:g}, KS {REFERENCE[1]:g}), the same for every method, shown once per method. "
             "Reference rows (italic): the original, the retrained model and a second retrain (other seed, same "
             "retained data: the noise floor). Configurations are labelled with the parameters that tell them apart "
             "(hover a label for all of them). Sweep trials are drawn and tabled at their validation figures on "
             "development seeds only; only configurations on a sweep's validation front, re-evaluated on report "
             "seeds, enter the test figures and tables.</p>",
             _settings_html(records), _sweeps_html(list(sweeps), records)]
    names = []
    for index, (cell, fig) in enumerate(figures):
        ref = refs.iloc[index]
        parts.append(f"<h2>{' / '.join(html.escape(str(c)) for c in cell)}</h2>")
        if _in(table, cell).empty and _in(ref_rows, cell).empty:
            parts.append("<p class='note'>no report-seed records in this cell yet (sweep trials only).</p>")
        else:
            parts.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{index}"))
            names.append((cell, fig))
            parts.append(f"<p class='note'>retrain: test N@20 {ref['retrain_retain_test_ndcg@20']:.4f}, mia_auc "
                         f"{ref['retrain_mia_auc']:.3f}; noise floor (retrain2): forget KS {ref['retrain2_forget_ks']:.3f}, "
                         f"test N@20 {ref['retrain2_retain_test_ndcg@20']:.4f}; original: forget KS "
                         f"{ref['original_forget_ks']:.3f}, mia_auc {ref['original_mia_auc']:.3f}</p>")
            parts.append(_table_html(pd.concat([_in(ref_rows, cell), _in(table, cell)], ignore_index=True)))
            parts.append(_hypervolume_html(_in(hv, cell)))
        if cell in validation:
            parts.append(f"<h3>sweep trials: development seeds, validation figures</h3>")
            parts.append(validation[cell].to_html(full_html=False, include_plotlyjs=False, div_id=f"trials-{index}"))
            names.append((cell + ("trials",), validation[cell]))
            parts.append(_trials_html(_in(trials, cell), _in(trial_refs, cell).iloc[0].to_dict()))
    parts += _sizes_html(size_figures(frame), names)  # across deletions
    parts += _steps_html(step_figures(frame), names)  # across the requests of a sequence
    parts.append("</body></html>")
    return "\n".join(parts), names


def _sizes_html(sizes: list, names: list) -> list[str]:
    """The "Deletion size" section (none without a cell whose ratios vary); appends its
    figures to ``names`` (PNG export)."""
    if not sizes:
        return []
    parts = ["<h2>Deletion size</h2>", "<p class='note'>Per cell whose records span several deletion ratios: "
             "retained test NDCG@20, forget KS, PrivLeak and the cost (unlearn seconds, log scale) against the "
             "number of deleted pairs |D_f| (log scale; the mean forget-set size of the records at each ratio), one "
             "line per method and selection (dash and marker: random solid circle, core dashed square, edge dotted "
             "triangle), each point the mean over report seeds with its 95% Student-t interval as an error bar. "
             "The black lines are the retrained model of each selection: its test NDCG@20, 0 for forget KS and "
             "PrivLeak (retraining is their reference), and the seconds training it took.</p>"]
    for index, (cell, fig) in enumerate(sizes):
        parts.append(f"<h3>{' / '.join(html.escape(str(c)) for c in cell)}: deletion size</h3>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"sizes-{index}"))
        names.append((cell + ("deletion size",), fig))
    return parts


def _steps_html(steps: list, names: list) -> list[str]:
    """The "Sequential requests" section (none without records of a sequence); appends
    its figures to ``names`` (PNG export)."""
    if not steps:
        return []
    parts = ["<h2>Sequential requests</h2>", "<p class='note'>Per sequence of deletion requests (a regime with "
             "steps: each request deletes the same share of the original data and is applied to the model the "
             "previous one left): retained test NDCG@20, forget KS and PrivLeak after each step, measured on every "
             "pair deleted so far against the model retrained without them; each point the mean over report seeds "
             "with its 95% Student-t interval. The black line is that retrained model (its NDCG@20; 0 for forget "
             "KS and PrivLeak). A line moving away from it is a method drifting as requests accumulate.</p>"]
    for index, (sequence, fig) in enumerate(steps):
        dataset, backbone, regime, selection, ratio = sequence
        parts.append(f"<h3>{html.escape(str(dataset))} / {html.escape(str(backbone))} / {html.escape(str(regime))}: "
                     f"sequential requests ({html.escape(str(selection))} {ratio:g} each)</h3>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"steps-{index}"))
        names.append(((dataset, backbone, regime, "sequential"), fig))
    return parts


def _store_name(store: ResultsStore) -> str:
    """The report's title: the store's folder name (a local one resolved)."""
    return Path(store.root).resolve().name if store.local and not store.uri else posixpath.basename(store.root.rstrip("/"))


def read_sweeps(store: ResultsStore) -> list[dict]:
    """The ``_sweeps/*.json`` sweeps wrote into the store (none for a plain run)."""
    out = []
    for text in store.texts("_sweeps", ".json"):
        try:
            out.append(json.loads(text))
        except ValueError:
            continue  # a sweep's description is informative only
    return out


def write_report(store_folder: str | Path, path: str | Path | None = None, png_folder: str | Path | None = None) -> Path:
    """Write the report of the store in ``store_folder`` (a folder or a URI,
    :class:`harness.distributed.store.ResultsStore`) to ``path`` (default ``_report.html``
    in the store's local folder, :func:`harness.distributed.store.local_folder`, and for a
    store on a URI a copy there); returns the path. A store on a URI or a large one is
    read and summarised through Ray Data."""
    for given in (path, png_folder):
        if given is not None and is_uri(given):
            raise UserError(f"{given}: the report and its images are written to a local path (a store on a URI "
                            "gets a copy of the default report)")
    store = ResultsStore(store_folder)
    if not store.files():
        raise UserError(f"{store_folder}: no results store here (no record files)")
    default = path is None
    path = Path(path) if path else local_folder(store_folder) / "_report.html"
    engine = "ray" if store.uses_ray_data() else "pandas"
    text, figures = build_page(store.read(engine), f"tru-harness report: {_store_name(store)}",
                               read_sweeps(store), engine)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False, encoding="utf-8") as f:
        f.write(text)
    os.chmod(f.name, 0o644)
    os.replace(f.name, path)
    if default:
        store.publish(path.parent)
    if png_folder is not None:
        write_pngs(figures, Path(png_folder))
    return path


def write_pngs(figures: list, folder: Path) -> int:
    """One PNG per figure through kaleido; without a Chromium, say so in one line."""
    if not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome", "chrome")):
        print("tru: no Chromium found: PNG images skipped (the HTML report is written)")
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    if not figures:
        return 0
    paths = [folder / f"{index:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', '-'.join(str(c) for c in cell))}.png"
             for index, (cell, _) in enumerate(figures)]
    # one browser for every image (a browser start per figure was slow, and timed out under load)
    pio.write_images([fig for _, fig in figures], paths, width=900,
                     height=[max(460, fig.layout.height or 0) for _, fig in figures])
    return len(figures)
