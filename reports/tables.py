"""The data behind a report, as pure functions of the records (a DataFrame of the store).

Kinds of record: ``run`` (an experiment job), ``trial`` (a sweep trial, chosen on the
validation split) and ``retest`` (a configuration of a sweep's validation front,
re-evaluated; ``split = "test"``). Tables, points, fronts and hypervolumes use ``run``
and ``retest`` records; ``trial`` records only appear as faint points in the figures.
A configuration is a (method, params) pair; its point is the mean over seeds of
(test NDCG@20, forget Recall@20).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.protocol.records import mia_gap
from reports.pareto import REFERENCE, hypervolume_2d, pareto_mask

CELL = ["dataset", "backbone", "regime"]
X, Y = "forget_recall@20", "retain_test_ndcg@20"
FIELDS = {
    "retain_test_ndcg@20": "test N@20", "retain_test_recall@20": "test R@20", "forget_recall@20": "forget R@20",
    "forget_ndcg@20": "forget N@20", "mia_auc": "mia_auc", "retrain_mia_auc": "retrain mia_auc",
    "mia_gap": "|mia - retrain|", "agreement@20": "agreement@20", "unlearn_seconds": "unlearn s",
    "speedup": "speedup", "updated_fraction": "updated",
}
BASELINES = ("retrain", "graph_edit", "finetune", "neggrad", "neggrad_plus", "mmrecun")


def method_order(method: str) -> tuple:
    """Baselines first (in :data:`BASELINES` order), then TRU and its ablations together, then plugins."""
    if method in BASELINES:
        return (0, BASELINES.index(method), method)
    return (1 if method == "tru" or method.startswith("tru-") else 2, 0, method)


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Successful records with ``kind``, ``mia_gap`` and a ``label`` per configuration:
    the method's name (``method #k`` when a cell's runs hold several of its
    configurations), ``method front #k`` for a re-tested configuration of a sweep's front."""
    ok = frame[frame["status"] == "ok"].copy()
    ok["kind"] = np.where(ok["sweep"].isna(), "run", np.where(ok["split"] == "test", "retest", "trial"))
    ok["mia_gap"] = mia_gap(ok["mia_auc"], ok["retrain_mia_auc"])
    ok["label"] = ok["method"]
    for kind, suffix in (("run", ""), ("retest", " front")):
        for _, group in ok[ok["kind"] == kind].groupby(CELL + ["method"]):
            configs = list(dict.fromkeys(group["params"]))
            if len(configs) > 1 or kind == "retest":
                ok.loc[group.index, "label"] = [f"{m}{suffix} #{configs.index(p) + 1}"
                                                for m, p in zip(group["method"], group["params"])]
    return ok


def method_table(records: pd.DataFrame) -> pd.DataFrame:
    """Per cell and configuration: mean and std over seeds of every field of :data:`FIELDS`
    (columns ``field`` and ``field_std``), the number of seeds, and the params."""
    shown = records[records["kind"] != "trial"]
    rows = []
    for (cell, label), group in _grouped(shown):
        row = dict(zip(CELL, cell)) | {"label": label, "method": group["method"].iloc[0],
                                       "params": group["params"].iloc[0], "seeds": group["seed"].nunique()}
        for field in FIELDS:
            values = group[field].astype(float)
            row[field] = values.mean()
            row[f"{field}_std"] = values.std(ddof=1) if len(values) > 1 else 0.0
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["_order"] = [method_order(m) for m in table["method"]]
    return table.sort_values(CELL + ["_order", "label"]).drop(columns="_order").reset_index(drop=True)


def _grouped(frame: pd.DataFrame):
    for key, group in frame.groupby(CELL + ["label"], sort=False):
        yield (tuple(key[:3]), key[3]), group


def points(table: pd.DataFrame) -> pd.DataFrame:
    """One point per cell and configuration of a :func:`method_table`: mean (forget R@20,
    test N@20) over seeds."""
    return table[CELL + ["label", "method", "params", "seeds", X, Y]] if not table.empty else table


def fronts(pts: pd.DataFrame) -> pd.DataFrame:
    """The points on each method's own Pareto front (higher N@20, lower forget R@20)."""
    keep = []
    for _, group in pts.groupby(CELL + ["method"], sort=False):
        mask = pareto_mask(group[[Y, X]].to_numpy(), [True, False])
        keep.append(group[mask].sort_values(X))
    return pd.concat(keep) if keep else pts.iloc[0:0]


def hypervolumes(pts: pd.DataFrame, reference: tuple[float, float] = REFERENCE) -> pd.DataFrame:
    """Per cell and method: the hypervolume of its points (reference: N@20 0, forget R@20 1)."""
    rows = [
        dict(zip(CELL + ["method"], key)) | {"hypervolume": hypervolume_2d(group[[Y, X]].to_numpy(), (True, False), reference)}
        for key, group in pts.groupby(CELL + ["method"], sort=False)
    ]
    return pd.DataFrame(rows, columns=CELL + ["method", "hypervolume"])


def references(records: pd.DataFrame) -> pd.DataFrame:
    """Per cell: the original's and the retrained model's (test N@20, forget R@20, mia_auc)."""
    rows = []
    for key, group in records.groupby(CELL, sort=False):
        row = dict(zip(CELL, key))
        for who in ("original", "retrain"):
            row[f"{who}_{Y}"] = group[f"{who}_{Y}"].astype(float).mean()
            row[f"{who}_{X}"] = group[f"{who}_{X}"].astype(float).mean()
            row[f"{who}_mia_auc"] = group[f"{who}_mia_auc"].astype(float).mean()
        rows.append(row)
    return pd.DataFrame(rows)
