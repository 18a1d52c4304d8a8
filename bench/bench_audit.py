"""The protocol v2 audit on a results folder: the acceptance checks per regime, and its cost.

Usage: python bench/bench_audit.py runs/compare-ml100k-mgcn

Reads the report records (``split = "test"`` and plain runs; never the development
trials). Per regime, over report seeds: PrivLeak of the original, graph_edit and the
second retrain as mean [95% t-interval] (the retrained model's is 0 by construction),
every model's ``mia_auc``, and the noise floor ``retrain2_forget_ks``; the checks of the
protocol issue are printed as PASS / FAIL. Then the audit's cost per job: the seconds of
a method's audit (attack, PrivLeak bootstrap, difference attack) against the whole TRU
job (unlearning plus all measures), measured inside the same jobs.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from harness.distributed.store import ResultsStore

from reports.statistics import interval


def _fmt(stats: dict) -> str:
    return f"{stats['mean']:+.3f} [{stats['low']:+.3f}, {stats['high']:+.3f}]"


def main(folder: str) -> None:
    frame = ResultsStore(folder).read()
    frame = frame[(frame["status"] == "ok") & (frame["split"].isna() | (frame["split"] == "test"))]
    print(f"# bench/bench_audit.py {folder}\n")
    for regime, group in frame.groupby("regime", sort=False):
        refs = group.drop_duplicates("seed").sort_values("seed")
        edit = group[group["method"] == "graph_edit"].drop_duplicates("seed")
        seeds = refs["seed"].tolist()
        original, second = interval(refs["original_privleak"]), interval(refs["retrain2_privleak"])
        graph_edit = interval(edit["privleak"])
        print(f"## {regime} (report seeds {seeds}; audit pairs per side {refs['audit_pairs'].astype(int).tolist()})\n")
        print("| model | PrivLeak | mia_auc | forget KS |")
        print("|---|---|---|---|")
        print(f"| original | {_fmt(original)} | {_fmt(interval(refs['original_mia_auc']))} | "
              f"{_fmt(interval(refs['original_forget_ks']))} |")
        print(f"| graph_edit | {_fmt(graph_edit)} | {_fmt(interval(edit['mia_auc']))} | {_fmt(interval(edit['forget_ks']))} |")
        print(f"| retrain | 0 (by construction) | {_fmt(interval(refs['retrain_mia_auc']))} | 0 |")
        print(f"| retrain2 (noise floor) | {_fmt(second)} | {_fmt(interval(refs['retrain2_mia_auc']))} | "
              f"{_fmt(interval(refs['retrain2_forget_ks']))} |")
        aucs = pd.concat([refs["original_mia_auc"], refs["retrain_mia_auc"], refs["retrain2_mia_auc"], group["mia_auc"]])
        lowest = interval(group.groupby("method")["mia_auc"].mean())
        checks = {
            "original's PrivLeak clearly positive (interval above 0)": original["low"] > 0,
            "second retrain's interval contains 0": second["low"] <= 0 <= second["high"],
            "graph_edit between the retrain (0) and the original (means)": 0 <= graph_edit["mean"] <= original["mean"],
            "every mia_auc >= 0.5 up to its interval": all(
                interval(g)["high"] >= 0.5 for g in [refs["original_mia_auc"], refs["retrain_mia_auc"],
                                                    refs["retrain2_mia_auc"]]
                + [m["mia_auc"] for _, m in group.groupby(["method", "params"])]),
        }
        print()
        for text, ok in checks.items():
            print(f"- {'PASS' if ok else 'FAIL'}: {text}")
        print(f"- lowest mia_auc of any record: {aucs.min():.3f}; mean over methods {lowest['mean']:.3f}\n")
    tru = frame[frame["method"] == "tru"]
    if not tru.empty:
        job = tru["unlearn_seconds"] + tru["measure_seconds"]
        share = tru["audit_seconds"] / job
        print("## audit cost per job (TRU records on report seeds)\n")
        print(f"audit {np.median(tru['audit_seconds']):.2f} s of a TRU job's {np.median(job):.2f} s "
              f"(median over {len(tru)} jobs): {np.median(share):.1%} (max {share.max():.1%}; goal < 20%)")


if __name__ == "__main__":
    main(sys.argv[1])
