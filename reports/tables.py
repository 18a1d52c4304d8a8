"""The data behind a report, as pure functions of the records (a DataFrame of the store).

Kinds of record: ``run`` (an experiment job), ``trial`` (a sweep trial, chosen on the
validation split) and ``retest`` (a configuration of a sweep's validation front,
re-evaluated on report seeds; ``split = "test"``). Tables, points, fronts and hypervolumes
use ``run`` and ``retest`` records; ``trial`` records only appear as faint points in the
figures. A configuration is a (method, params) pair; its point is the mean over seeds of
(forget KS, test NDCG@20): X = ``forget_ks``, the KS statistic of the deleted pairs' rank
percentiles against the retrained model's (0 = ranked as retraining ranks them; lower is
better), Y = ``retain_test_ndcg@20`` (higher is better).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from reports.grouping import summarise_groups
from reports.pareto import REFERENCE, hypervolume_2d, pareto_mask
from reports.statistics import interval

CELL = ["dataset", "backbone", "regime"]
X, Y = "forget_ks", "retain_test_ndcg@20"
FIELDS = {
    "retain_test_ndcg@20": "test N@20", "retain_test_recall@20": "test R@20", "forget_recall@20": "forget R@20",
    "forget_gap@20": "forget gap@20", "forget_ks": "forget KS", "agreement@20": "agreement@20",
    "mia_auc": "mia_auc", "privleak": "PrivLeak", "mia_diff_auc": "diff-attack AUC", "unlearn_seconds": "unlearn s",
    "retain_test_ndcg@20_active": "test N@20 active", "retain_test_ndcg@20_inactive": "test N@20 inactive",
    "fairness_gap@20": "fairness gap@20", "fairness_gap_vs_retrain@20": "gap vs retrain",
    "speedup": "speedup", "updated_fraction": "updated",
}
#: means carried beside FIELDS for readers of the table (not shown as columns of the page)
CONTEXT = ("retrain_mia_auc",)
BASELINES = ("retrain", "graph_edit", "redraw", "finetune", "neggrad", "neggrad_plus", "mmrecun", "ifru", "scif", "gif")
#: exact partitioned methods: shown after retrain, never TRU's comparator (they retrain)
PARTITIONED = ("sisa", "receraser")
#: the reference models' rows: label and the record prefix their figures are read from
REFERENCE_ROWS = {"original": "original", "retrain": "retrain (reference)", "retrain2": "retrain2 (noise floor)"}
#: differences from the retrained model: field -> the figure both sides are read from
GAPS = {"forget_gap@20": "forget_recall@20", "fairness_gap_vs_retrain@20": "fairness_gap@20"}
#: the retrained model's distances to itself, by definition
RETRAIN_SELF = {"forget_ks": 0.0, "forget_gap@20": 0.0, "fairness_gap_vs_retrain@20": 0.0, "agreement@20": 1.0, "privleak": 0.0, "speedup": 1.0}


def method_order(method: str) -> tuple:
    """Retrain, the partitioned methods and the other baselines first (in :data:`BASELINES`
    order), then TRU and its ablations together, then plugins."""
    if method in PARTITIONED:
        return (0, 0.5 + PARTITIONED.index(method) / 10, method)
    if method in BASELINES:
        return (0, BASELINES.index(method), method)
    return (1 if method == "tru" or method.startswith("tru-") else 2, 0, method)


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Successful records with ``kind`` and a ``label`` per configuration: the method's
    name, followed by the parameters that tell its configurations apart
    (:func:`config_labels`): ``method: lr=0.01`` when a cell's runs hold several of its
    configurations, ``method front: lr=0.0157, lambda_f=7.26`` for a re-tested
    configuration of a sweep's front (the dimensions its trials searched).

    A regime recorded at several deletions (selections or ratios) in one (dataset,
    backbone) becomes one cell per deletion: ``regime`` reads e.g. ``user (core 0.05)``
    (``regime_name`` keeps ``user``), so every table, front, hypervolume, reference marker
    and figure of a cell is of one deletion."""
    ok = frame[frame["status"] == "ok"].copy()
    ok["regime_name"] = ok["regime"]
    ok["regime"] = deletion_regimes(ok)
    ok["kind"] = np.where(ok["sweep"].isna(), "run", np.where(ok["split"] == "test", "retest", "trial"))
    ok["label"] = ok["method"]
    for kind, suffix in (("run", ""), ("retest", " front")):
        for (*cell, method), group in ok[ok["kind"] == kind].groupby(CELL + ["method"]):
            configs = list(dict.fromkeys(group["params"]))
            if len(configs) > 1 or kind == "retest":
                trials = ok[(ok["kind"] == "trial") & (ok["method"] == method)]
                names = config_labels(configs, list(dict.fromkeys(trials["params"])))
                ok.loc[group.index, "label"] = [f"{method}{suffix}: {names[p]}".rstrip(": ") for p in group["params"]]
    shown = ok["kind"] != "trial"  # a row never averages records of different settings
    ok.loc[shown, "label"] = ok.loc[shown, "label"] + settings_suffixes(ok[shown], CELL + ["label"])
    return ok


def deletion_regimes(frame: pd.DataFrame) -> pd.Series:
    """Per row of ``frame`` (records, or ``tru compare``'s chosen configurations), its
    regime named after its deletion, e.g. ``user (core 0.05)``, where its (dataset,
    backbone, regime) holds more than one (selection, ratio); the plain regime elsewhere.
    A record of a sequence of requests adds its step: ``user step 3``."""
    if frame.empty or not {"selection", "ratio"} <= set(frame):
        return frame["regime"].copy()
    deletion = frame["selection"].astype(str) + " " + frame["ratio"].map(
        lambda r: f"{r:g}" if pd.notna(r) else "?").astype(str)
    several = deletion.groupby([frame[c] for c in CELL], sort=False).transform("nunique") > 1
    named = frame["regime"].where(~several, frame["regime"] + " (" + deletion + ")")
    if "step" in frame:
        step = frame["step"]
        named = named.where(step.isna(), named + " step " + step.map(lambda t: f"{t:.0f}" if pd.notna(t) else ""))
    return named


#: record columns a table row never mixes: records differing in one get rows of their own
SETTINGS = {"settings": "", "code_version": "code", "selection": "selection", "ratio": "ratio"}


def settings_suffixes(records: pd.DataFrame, by: list[str], columns=tuple(SETTINGS)) -> pd.Series:
    """Per record, `` [name=value, ...]`` naming its values of those ``columns`` that differ
    among the records of its ``by`` group (the ``settings`` JSON by the keys that differ,
    e.g. ``training.max_epochs=80``; a value a record lacks reads "not recorded"), "" where
    they agree. Appended to a label, it splits a row that would otherwise average records
    measured under different settings, code versions or deletion ratios."""
    out = pd.Series("", index=records.index, dtype=object)
    present = [c for c in columns if c in records]
    for _, group in records.groupby(by, sort=False, dropna=False):
        parts: dict = {i: [] for i in group.index}
        for column in present:
            values = group[column].astype(object).where(group[column].notna(), None)
            if values.map(repr).nunique() < 2:
                continue
            if column == "settings":
                flat = {i: _flat(v) if v is not None else None for i, v in values.items()}
                known = [f for f in flat.values() if f is not None]
                keys = sorted({k for f in known for k in f})
                varying = [k for k in keys if len({repr(f.get(k)) for f in known}) > 1]
                for i, f in flat.items():
                    parts[i] += [f"{k}={_short(f[k]) if k in f else 'not recorded'}" for k in varying] if f else [
                        "settings not recorded"]
            else:
                for i, v in values.items():
                    parts[i].append(f"{SETTINGS[column]}={'not recorded' if v is None else _short(v)}")
        for i, found in parts.items():
            if found:
                out[i] = f" [{', '.join(found)}]"
    return out


def _flat(params: str) -> dict:
    """A configuration's params (JSON) as ``{name: value}``, nested objects as ``name.key``."""
    try:
        value = json.loads(params) if params else {}
    except (TypeError, ValueError):
        return {"params": params}
    out = {}
    for key, item in (value.items() if isinstance(value, dict) else []):
        if isinstance(item, str) and item.startswith("{"):  # a per-branch object passed as JSON text
            try:
                item = json.loads(item)
            except ValueError:
                pass
        if isinstance(item, dict):
            out |= {f"{key}.{k}": v for k, v in item.items()}
        else:
            out[key] = item
    return out


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def config_labels(configs: list[str], searched: list[str] = ()) -> dict[str, str]:
    """``{params: label}``: each configuration named by the parameters that differ among
    ``configs`` and ``searched`` (other configurations of the method, a sweep's trials),
    as ``name=value`` (floats to 3 significant digits); labels that would still coincide
    get `` #k``."""
    flat = {p: _flat(p) for p in list(configs) + list(searched)}
    keys = sorted({k for f in flat.values() for k in f})
    varying = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flat.values()}) > 1]
    labels = {p: ", ".join(f"{k}={_short(flat[p][k])}" for k in varying if k in flat[p]) for p in configs}
    counts = pd.Series(list(labels.values())).value_counts()
    seen: dict[str, int] = {}
    for p in configs:
        if counts[labels[p]] > 1:
            seen[labels[p]] = seen.get(labels[p], 0) + 1
            labels[p] = f"{labels[p]} #{seen[labels[p]]}".strip()
    return labels


def _summarise(row: dict, values: dict) -> dict:
    """``row`` with ``field`` (mean), ``field_std``, ``field_low``, ``field_high`` (the 95%
    t-interval of :func:`reports.statistics.interval`) of each ``field: per-seed values``."""
    for field, series in values.items():
        stats = interval(series)
        row |= {field: stats["mean"], f"{field}_std": stats["std"], f"{field}_low": stats["low"],
                f"{field}_high": stats["high"]}
    return row


def _values(group: pd.DataFrame, name: str) -> pd.Series:
    return group[name].astype(float) if name in group else pd.Series(np.nan, index=group.index)


def method_table(records: pd.DataFrame, engine: str = "pandas") -> pd.DataFrame:
    """Per cell and configuration: mean, std (``ddof = 1``; 0 for one seed) and 95% t-interval
    over seeds of every field of :data:`FIELDS` (columns ``field``, ``field_std``,
    ``field_low``, ``field_high``), the mean of :data:`CONTEXT`, the number of seeds, the params.

    ``engine``: ``"pandas"`` here, or ``"ray"``: the groups are summarised by Ray Data
    (:func:`reports.grouping.summarise_groups`); both give the same table."""
    shown = records[records["kind"] != "trial"]
    keys = CELL + ["label"]
    columns = list(dict.fromkeys(keys + ["method", "params", "seed"] + [c for c in (*FIELDS, *CONTEXT) if c in shown]))
    table = summarise_groups(shown[columns], keys, _configuration_row, engine)
    if engine == "ray" and not table.empty:
        figures = [c for c in table if c not in keys + ["method", "params", "seeds"]]
        table[figures] = table[figures].astype(float)  # an all-missing field comes back as nulls
    if table.empty:
        return table
    table["_order"] = [method_order(m) for m in table["method"]]
    return table.sort_values(CELL + ["_order", "label"]).drop(columns="_order").reset_index(drop=True)


def _configuration_row(group: pd.DataFrame) -> dict:
    """The :func:`method_table` row of one (cell, label) group of records."""
    row = {c: group[c].iloc[0] for c in CELL} | {"label": group["label"].iloc[0], "method": group["method"].iloc[0],
                                                 "params": group["params"].iloc[0], "seeds": group["seed"].nunique()}
    row = _summarise(row, {field: _values(group, field) for field in FIELDS})
    return row | {name: _values(group, name).mean() for name in CONTEXT}


def reference_values(per_seed: pd.DataFrame, who: str) -> dict:
    """Per-seed values of each field of :data:`FIELDS` for reference model ``who``: the
    column ``who_field``; the :data:`GAPS` as differences, e.g. ``forget_gap@20 =
    who_forget_recall@20 - retrain_forget_recall@20``;
    the retrained model's :data:`RETRAIN_SELF` constants and ``unlearn_seconds = retrain_seconds``."""
    out = {}
    for field in FIELDS:
        name = f"{who}_{field}"
        if who == "retrain" and field in RETRAIN_SELF:
            out[field] = pd.Series(RETRAIN_SELF[field], index=per_seed.index)
        elif who == "retrain" and field == "unlearn_seconds" and "retrain_seconds" in per_seed:
            out[field] = per_seed["retrain_seconds"].astype(float)
        elif field in GAPS and {f"{who}_{GAPS[field]}", f"retrain_{GAPS[field]}"} <= set(per_seed):
            out[field] = per_seed[f"{who}_{GAPS[field]}"].astype(float) - per_seed[f"retrain_{GAPS[field]}"].astype(float)
        elif name in per_seed:
            out[field] = per_seed[name].astype(float)
    if who == "retrain" and f"{who}_{Y}" in per_seed:  # the constants hold only where retraining was measured
        measured = per_seed[f"{who}_{Y}"].notna()
        out = {f: v.where(measured) for f, v in out.items()}
    return out


def reference_rows(records: pd.DataFrame) -> pd.DataFrame:
    """Per cell, rows labelled ``original``, ``retrain (reference)`` and ``retrain2 (noise
    floor)``, with the columns of :func:`method_table` (``reference`` True, ``params`` empty).

    Read from the reference columns of the cell's ``run`` and ``retest`` records, one value
    per seed (the first record of each seed). ``original``: ``original_*``; ``retrain``:
    ``retrain_*`` with forget KS 0, forget gap 0, agreement 1, PrivLeak 0 (its distances
    to itself), ``mia_auc = retrain_mia_auc``, ``mia_diff_auc = retrain_mia_diff_auc``;
    ``retrain2`` (the second retrained model, the noise floor): ``retrain2_*``. A row whose
    figures are all NaN (``retrain2`` on development seeds) is left out. Records of
    different settings or deletion ratios get reference rows of their own, labelled by
    what differs (:func:`settings_suffixes`).
    """
    shown = records[records["kind"] != "trial"] if "kind" in records else records
    shown = shown.assign(_settings=settings_suffixes(shown, CELL, ("settings", "selection", "ratio")))
    rows = []
    for key, group in shown.groupby(CELL + ["_settings"], sort=False):  # never across settings (tidy)
        per_seed = group.drop_duplicates("seed", keep="first")
        for who, label in REFERENCE_ROWS.items():
            values = reference_values(per_seed, who)
            seeds = int(pd.concat(values, axis=1).notna().any(axis=1).sum()) if values else 0
            if seeds == 0:
                continue
            row = dict(zip(CELL, key)) | {"label": label + key[-1], "method": who, "params": "", "seeds": seeds,
                                          "reference": True}
            rows.append(_summarise(row, {field: values.get(field, pd.Series(dtype=float)) for field in FIELDS}))
    return pd.DataFrame(rows)


def points(table: pd.DataFrame) -> pd.DataFrame:
    """One point per cell and configuration of a :func:`method_table`: mean (forget KS,
    test N@20) over seeds, with mean PrivLeak and agreement@20 for the hover text."""
    columns = CELL + ["label", "method", "params", "seeds", X, Y, "privleak", "agreement@20"]
    return table[columns] if not table.empty else table


def fronts(pts: pd.DataFrame) -> pd.DataFrame:
    """The points on each method's own Pareto front (higher test N@20, lower forget KS)."""
    keep = []
    for _, group in pts.groupby(CELL + ["method"], sort=False):
        mask = pareto_mask(group[[Y, X]].to_numpy(), [True, False])
        keep.append(group[mask].sort_values(X))
    return pd.concat(keep) if keep else pts.iloc[0:0]


def hypervolumes(pts: pd.DataFrame, reference: tuple[float, float] = REFERENCE) -> pd.DataFrame:
    """Per cell and method: the hypervolume of its points in (test N@20 up, forget KS down)
    against :data:`reports.pareto.REFERENCE` (N@20 0, forget KS 1):
    the area of ``{(n, k): 0 <= n <= N_i, K_i <= k <= 1 for some point i}``."""
    rows = [
        dict(zip(CELL + ["method"], key)) | {"hypervolume": hypervolume_2d(group[[Y, X]].to_numpy(), (True, False), reference)}
        for key, group in pts.groupby(CELL + ["method"], sort=False)
    ]
    return pd.DataFrame(rows, columns=CELL + ["method", "hypervolume"])


def references(records: pd.DataFrame) -> pd.DataFrame:
    """Per cell, for the figures: mean over seeds (first record per seed; ``run``/``retest``
    records when the cell has any, else all) of the original's, the retrained model's and
    the second retrain's test N@20 (``who_retain_test_ndcg@20``), forget KS
    (``who_forget_ks``; retrain 0), forget R@20, mia_auc, PrivLeak (retrain 0) and
    agreement@20 (retrain 1). ``retrain2_*`` is NaN where no second retrain was measured."""
    rows = []
    for key, group in records.groupby(CELL, sort=False):
        if "kind" in group and (group["kind"] != "trial").any():
            group = group[group["kind"] != "trial"]
        per_seed = group.drop_duplicates("seed", keep="first")
        row = dict(zip(CELL, key))
        for who in ("original", "retrain", "retrain2"):
            values = reference_values(per_seed, who)
            for field in (Y, X, "forget_recall@20", "mia_auc", "privleak", "agreement@20"):
                row[f"{who}_{field}"] = values[field].mean() if field in values else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------- sweep trials (validation)
#: the validation view of a sweep's trials: forget KS against validation NDCG@20
VALID_Y = "retain_valid_ndcg@20"


def trial_points(records: pd.DataFrame) -> pd.DataFrame:
    """Per cell, sweep and trial: the mean over its development seeds of forget KS and
    validation N@20 (:data:`VALID_Y`), and ``front`` (its configuration was re-evaluated:
    it is on the sweep's validation front). Reads validation figures only, never a
    trial's test figures (trial records carry none)."""
    columns = CELL + ["sweep", "trial_id", "method", "params", "seeds", X, VALID_Y, "front"]
    trials = records[records["kind"] == "trial"] if "kind" in records else records.iloc[0:0]
    if trials.empty:
        return pd.DataFrame(columns=columns)
    retested = set(zip(records.loc[records["kind"] == "retest", "sweep"], records.loc[records["kind"] == "retest", "params"]))
    rows = []
    for (*cell, sweep, trial_id), group in trials.groupby(CELL + ["sweep", "trial_id"], sort=False):
        params = group["params"].iloc[0]
        rows.append(dict(zip(CELL, cell)) | {
            "sweep": sweep, "trial_id": trial_id, "method": group["method"].iloc[0], "params": params,
            "seeds": group["seed"].nunique(), X: _values(group, X).mean(), VALID_Y: _values(group, VALID_Y).mean(),
            "front": (sweep, params) in retested})
    return pd.DataFrame(rows, columns=columns)


def trial_references(records: pd.DataFrame) -> pd.DataFrame:
    """Per cell, from its trial records (development seeds, first record per seed): the
    original's and the retrained model's validation N@20 and forget KS (retrain 0), the
    reference points of the validation view."""
    trials = records[records["kind"] == "trial"] if "kind" in records else records.iloc[0:0]
    rows = []
    for key, group in trials.groupby(CELL, sort=False):
        per_seed = group.drop_duplicates("seed", keep="first")
        rows.append(dict(zip(CELL, key)) | {
            "seeds": len(per_seed),
            f"original_{VALID_Y}": _values(per_seed, f"original_{VALID_Y}").mean(),
            f"original_{X}": _values(per_seed, f"original_{X}").mean(),
            f"retrain_{VALID_Y}": _values(per_seed, f"retrain_{VALID_Y}").mean(), f"retrain_{X}": 0.0})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------- the settings block
def settings_block(records: pd.DataFrame) -> list[tuple[str, str]]:
    """``(name, value)`` rows saying what the records were measured under: training
    epochs (and the other training settings), the shared unlearning budget, the audit
    size, the deletion ratio and forget-set size per regime, the code versions and the
    dates. Values that differ between records are all listed (``a | b``); settings the
    records do not carry (written before they did) read "not recorded"."""

    def distinct(values) -> str:
        seen = [v for v in dict.fromkeys(values) if v is not None and not (isinstance(v, float) and np.isnan(v))]
        return " | ".join(map(str, seen)) if seen else "not recorded"

    parsed = [json.loads(s) for s in records["settings"].dropna()] if "settings" in records else []
    training = [s.get("training", {}) for s in parsed]
    rows = [("training epochs (max)", distinct(t.get("max_epochs") for t in training)),
            ("training", distinct(", ".join(f"{k}={_short(v)}" for k, v in sorted(t.items()) if k != "max_epochs")
                                  for t in training)),
            ("unlearning budget", distinct(", ".join(f"{k}={v}" for k, v in sorted(s.get("budget", {}).items()))
                                           for s in parsed)),
            ("audit size", distinct(s.get("audit_size") for s in parsed))]
    for regime, group in records.groupby("regime", sort=False):
        pairs = group["forget_pairs"].dropna().astype(int) if "forget_pairs" in group else []
        rows.append((f"{regime}: ratio, forget-set size",
                     f"{distinct(group.get('ratio', []))}; |D_f| {distinct(pairs) if len(pairs) else 'not recorded'}"))
    versions = records.dropna(subset=["code_version"]) if "code_version" in records else records.iloc[0:0]
    rows.append(("code version", "; ".join(f"{m} {distinct(g['code_version'])}" for m, g in versions.groupby("method"))
                 or "not recorded"))
    dates = pd.concat([records.get("started_at", pd.Series(dtype=str)), records.get("finished_at", pd.Series(dtype=str))]).dropna()
    rows.append(("date", f"{min(dates)[:16].replace('T', ' ')} to {max(dates)[:16].replace('T', ' ')} UTC"
                 if len(dates) else "not recorded"))
    return rows
