"""TRU against the baselines and its ablations, per regime, with the acceptance checks.

Usage: python bench/bench_tru.py [--dataset ml100k] [--backbone mgcn] [--seeds 0]
       [--params '{"gate_strength": 0.5}']

For each regime (random selection, ratio 0.05) prints graph_edit, mmrecun, tru and the
three ablations: test retain NDCG@20, forget Recall@20, mia_auc (beside the retrain's),
unlearn seconds and the retrain/unlearn ratio, with TRU's decisions. Then the checks:
TRU's (test NDCG@20, forget R@20) is not dominated beyond ``--noise`` by graph_edit or
mmrecun; its |mia_auc - retrain| against theirs; unlearn_seconds <= retrain/20.
Originals and retrained references come from the model cache when present.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import torch

from harness.data import load_dataset
from harness.regimes import make_task
from harness.unlearning import prepare, run_method

METHODS = ["graph_edit", "mmrecun", "tru", "tru-no-gate", "tru-no-scale", "tru-no-isolation"]


def dominated(point, other, noise) -> bool:
    """``other`` beats ``point`` beyond noise on both axes (higher NDCG, lower forget)."""
    return other[0] > point[0] + noise and other[1] < point[1] - noise


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="ml100k")
    parser.add_argument("--backbone", default="mgcn")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--regimes", nargs="+", default=["interaction", "user", "item"])
    parser.add_argument("--params", default="{}", help="TRU hyperparameters (JSON)")
    parser.add_argument("--noise", type=float, default=0.004)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", default=".cache/models")
    parser.add_argument("--summary", action="store_true", help="only print the summary over stored seeds")
    args = parser.parse_args()
    out = Path(__file__).parent / "results" / f"tru-{args.dataset}-{args.backbone}.jsonl"
    if args.summary:
        summarize(out)
        return
    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.dataset)
    tru_params = json.loads(args.params)
    checks = []
    with out.open("a") as sink:
        for seed in args.seeds:
            for regime in args.regimes:
                task = make_task(dataset, regime, "random", 0.05, seed)
                refs = prepare(dataset, args.backbone, task, seed, cache_dir=Path(args.cache_dir), progress=False)
                print(f"\n## {args.dataset} / {args.backbone} / {regime} / seed {seed}")
                print("| method | test N@20 | forget R@20 | mia_auc | unlearn s | retrain/unlearn | updated | decisions |")
                print("|---|---|---|---|---|---|---|---|")
                rec = {}
                for method in METHODS:
                    params = tru_params if method.startswith("tru") else {}
                    if method != "tru":
                        params = {k: v for k, v in params.items() if k not in _fixed(method)}
                    r = run_method(refs, method, params)
                    rec[method] = r
                    sink.write(json.dumps(r) + "\n")
                    decisions = json.loads(r.get("decisions", "{}")) if r["status"] == "ok" else {"error": r["error"]}
                    short = {k: decisions[k] for k in ("p_star", "epochs_run", "final_gate", "capacity_share", "alpha") if k in decisions}
                    if "units" in decisions:
                        short["units"] = [u["unit"] for u in decisions["units"]]
                    print(f"| {method} | {r.get('retain_test_ndcg@20', float('nan')):.4f} | {r.get('forget_recall@20', float('nan')):.4f} | "
                          f"{r.get('mia_auc', float('nan')):.3f} | {r.get('unlearn_seconds', float('nan')):.2f} | "
                          f"{r.get('speedup', float('nan')):.0f}x | {r.get('updated_fraction', float('nan')):.3f} | "
                          f"{json.dumps(short, default=lambda x: round(x, 3))} |", flush=True)
                g = rec["graph_edit"]
                print(f"retrain: test N@20 {_retrain_ndcg(refs):.4f}, forget R@20 {g['retrain_forget_recall@20']:.4f}, "
                      f"mia_auc {g['retrain_mia_auc']:.3f}; original: forget R@20 {g['original_forget_recall@20']:.4f}, "
                      f"mia_auc {g['original_mia_auc']:.3f}")
                t = rec["tru"]
                point = (t["retain_test_ndcg@20"], t["forget_recall@20"])
                for base in ("graph_edit", "mmrecun"):
                    other = (rec[base]["retain_test_ndcg@20"], rec[base]["forget_recall@20"])
                    checks.append((f"{regime}/s{seed}: TRU not dominated by {base} beyond {args.noise}", not dominated(point, other, args.noise)))
                gap = abs(t["mia_auc"] - t["retrain_mia_auc"])
                others = {b: abs(rec[b]["mia_auc"] - t["retrain_mia_auc"]) for b in ("graph_edit", "mmrecun")}
                checks.append((f"{regime}/s{seed}: |mia - retrain| TRU {gap:.3f} vs graph_edit {others['graph_edit']:.3f}, "
                               f"mmrecun {others['mmrecun']:.3f}", gap < min(others.values())))
                checks.append((f"{regime}/s{seed}: TRU unlearn_seconds <= retrain/20 (ratio {t['speedup']:.0f}x)", t["speedup"] >= 20))
    print("\n## checks")
    for text, ok in checks:
        print(f"- [{'x' if ok else ' '}] {text}")
    summarize(out)


def summarize(path: Path) -> None:
    """Mean +- std over the seeds stored in ``path`` (the latest record per regime, seed
    and method), and per seed TRU's margin over each baseline on both axes."""
    import pandas as pd

    records = pd.DataFrame([json.loads(line) for line in path.open()])
    records = records[records["status"] == "ok"].drop_duplicates(["regime", "seed", "method"], keep="last")
    seeds = sorted(int(s) for s in records["seed"].unique())
    print(f"\n## summary over seeds {seeds} (mean +- std)")
    print("| regime | method | test N@20 | forget R@20 | mia_auc | retrain mia_auc | unlearn s |")
    print("|---|---|---|---|---|---|---|")
    fields = ["retain_test_ndcg@20", "forget_recall@20", "mia_auc", "retrain_mia_auc", "unlearn_seconds"]
    for (regime, method), group in records.groupby(["regime", "method"], sort=False):
        cells = [f"{group[f].mean():.4f} +- {group[f].std(ddof=1) if len(group) > 1 else 0:.4f}" for f in fields]
        print(f"| {regime} | {method} | " + " | ".join(cells) + " |")
    print("\nTRU minus baseline per seed: (test N@20 difference, forget R@20 difference)")
    for regime, group in records.groupby("regime", sort=False):
        by = group.set_index(["method", "seed"])
        for base in ("graph_edit", "mmrecun"):
            diffs = [
                (by.loc[("tru", s), "retain_test_ndcg@20"] - by.loc[(base, s), "retain_test_ndcg@20"],
                 by.loc[("tru", s), "forget_recall@20"] - by.loc[(base, s), "forget_recall@20"])
                for s in seeds if ("tru", s) in by.index and (base, s) in by.index
            ]
            print(f"- {regime} vs {base}: " + ", ".join(f"({a:+.4f}, {b:+.4f})" for a, b in diffs))


def _fixed(method: str) -> set:
    from methods import METHODS as REGISTRY

    declared = {h.name for h in REGISTRY.get(method).hyperparameters}
    full = {h.name for h in REGISTRY.get("tru").hyperparameters}
    return full - declared if method.startswith("tru") else full


def _retrain_ndcg(refs) -> float:
    return refs.retrain_measure.metrics["retain_test_ndcg@20"]


if __name__ == "__main__":
    main()
