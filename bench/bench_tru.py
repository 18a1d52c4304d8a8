"""TRU against the baselines and its ablations, per regime, with the acceptance checks.

Usage: python bench/bench_tru.py [--dataset ml100k] [--backbone mgcn] [--seeds 0]
       [--params '{"gate_strength": 0.5}']

For each regime (random selection, ratio 0.05) prints graph_edit, mmrecun, tru and the
three ablations: test retain NDCG@20, forget Recall@20, mia_auc (beside the retrain's),
unlearn seconds and the retrain/unlearn ratio, with TRU's decisions. Then the checks:
TRU's (test NDCG@20, forget R@20) is not dominated beyond ``--noise`` by graph_edit or
mmrecun; its |mia_auc - retrain| against theirs; unlearn_seconds <= retrain/20.
Originals and retrained references come from the model cache when present. Records
(the retrain's point too) are appended to ``bench/results/tru-DATASET-BACKBONE.jsonl``;
``--summary`` prints mean +- std over its seeds, ``--cells`` the acceptance and
ablation tables over every stored (dataset, backbone) at one seed.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import torch

from harness.core.paths import DEFAULT_CACHE
from harness.data.datasets import load_dataset
from harness.data.regimes import make_task
from harness.protocol.unlearning import prepare, run_method

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
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE))
    parser.add_argument("--summary", action="store_true", help="only print the summary over stored seeds")
    parser.add_argument("--cells", action="store_true", help="only print every stored cell at the first seed")
    args = parser.parse_args()
    results = Path(__file__).parent / "results"
    out = results / f"tru-{args.dataset}-{args.backbone}.jsonl"
    if args.cells:
        cells(results, args.seeds[0], args.noise)
        return
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
                retrain = {k: g[k] for k in ("dataset", "backbone", "regime", "seed", "status", "retrain_seconds")}
                retrain |= {"method": "retrain", "retain_test_ndcg@20": _retrain_ndcg(refs),
                            "forget_recall@20": g["retrain_forget_recall@20"], "mia_auc": g["retrain_mia_auc"]}
                sink.write(json.dumps(retrain) + "\n")
                print(f"retrain: test N@20 {_retrain_ndcg(refs):.4f}, forget R@20 {g['retrain_forget_recall@20']:.4f}, "
                      f"mia_auc {g['retrain_mia_auc']:.3f}; original: forget R@20 {g['original_forget_recall@20']:.4f}, "
                      f"mia_auc {g['original_mia_auc']:.3f}")
                checks += [(f"{regime}/s{seed}: {text}", ok) for text, ok in cell_checks(rec, args.noise)]
    print("\n## checks")
    for text, ok in checks:
        print(f"- [{'x' if ok else ' '}] {text}")
    summarize(out)


def cell_checks(rec: dict, noise: float) -> list[tuple[str, bool]]:
    """The acceptance checks of one cell from its records by method: TRU's (test N@20,
    forget R@20) not dominated beyond ``noise`` by graph_edit or mmrecun; its mia_auc
    closer to the retrain's than both; unlearn_seconds <= retrain_seconds / 20."""
    t = rec["tru"]
    point = (t["retain_test_ndcg@20"], t["forget_recall@20"])
    checks = []
    for base in ("graph_edit", "mmrecun"):
        other = (rec[base]["retain_test_ndcg@20"], rec[base]["forget_recall@20"])
        checks.append((f"TRU not dominated by {base} beyond {noise}", not dominated(point, other, noise)))
    gap = abs(t["mia_auc"] - t["retrain_mia_auc"])
    others = {b: abs(rec[b]["mia_auc"] - t["retrain_mia_auc"]) for b in ("graph_edit", "mmrecun")}
    checks.append((f"|mia - retrain| TRU {gap:.3f} vs graph_edit {others['graph_edit']:.3f}, "
                   f"mmrecun {others['mmrecun']:.3f}", gap < min(others.values())))
    checks.append((f"TRU unlearn_seconds <= retrain/20 (ratio {t['speedup']:.0f}x)", t["speedup"] >= 20))
    return checks


def latest(path: Path):
    """The ok records of ``path``, the latest per (regime, seed, method)."""
    import pandas as pd

    records = pd.DataFrame([json.loads(line) for line in path.open()])
    return records[records["status"] == "ok"].drop_duplicates(["regime", "seed", "method"], keep="last")


def cells(results: Path, seed: int, noise: float) -> None:
    """Every stored (dataset, backbone) x regime at ``seed``: TRU beside the baselines and
    the retrain (test N@20 / forget R@20 / mia_auc), the checks, then the ablation table
    (each ablation's point and |mia - retrain| beside TRU's)."""
    rows, ablations, passed = [], [], {"undominated": 0, "mia": 0, "speed": 0}
    for path in sorted(results.glob("tru-*-*.jsonl")):
        if path.stat().st_size == 0:
            continue
        records = latest(path)
        records = records[records["seed"] == seed]
        for regime in ("interaction", "user", "item"):
            rec = {r["method"]: r for r in records[records["regime"] == regime].to_dict("records")}
            if not {"graph_edit", "mmrecun", "tru"} <= set(rec):
                continue
            t = rec["tru"]
            label = f"{t['dataset']} | {t['backbone']} | {regime}"
            retrain = _point(rec["retrain"]) if "retrain" in rec else (
                f"- / {t['retrain_forget_recall@20']:.4f} / {t['retrain_mia_auc']:.3f}")
            ok = [c[1] for c in cell_checks(rec, noise)]
            passed["undominated"] += ok[0] and ok[1]
            passed["mia"] += ok[2]
            passed["speed"] += ok[3]
            marks = ["yes" if b else "**no**" for b in (ok[0] and ok[1], ok[2])]
            rows.append(f"| {label} | {retrain} | {_point(rec['graph_edit'])} | {_point(rec['mmrecun'])} | {_point(t)} | "
                        f"{marks[0]} | {marks[1]} | {t['speedup']:.0f}x |")
            ablated = [_point(rec[m], t["retrain_mia_auc"]) if m in rec else "-"
                       for m in ("tru", "tru-no-gate", "tru-no-scale", "tru-no-isolation")]
            ablations.append(f"| {label} | " + " | ".join(ablated) + " |")
    print(f"## TRU per cell, seed {seed} (test N@20 / forget R@20 / mia_auc; noise {noise})\n")
    print("| dataset | backbone | regime | retrain | graph_edit | mmrecun | tru | not dominated | mia closest "
          "| retrain/unlearn |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    n = len(rows)
    print(f"\nnot dominated: {passed['undominated']}/{n} cells; mia_auc closest to the retrain's: {passed['mia']}/{n}; "
          f"unlearn <= retrain/20: {passed['speed']}/{n}")
    print(f"\n## Ablations, seed {seed} (test N@20 / forget R@20 / |mia_auc - retrain|)\n")
    print("| dataset | backbone | regime | tru | tru-no-gate | tru-no-scale | tru-no-isolation |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(ablations))


def _point(r: dict, retrain_mia: float | None = None) -> str:
    """``test N@20 / forget R@20 / mia_auc`` (``|mia_auc - retrain_mia|`` when given)."""
    mia = r["mia_auc"] if retrain_mia is None else abs(r["mia_auc"] - retrain_mia)
    return f"{r['retain_test_ndcg@20']:.4f} / {r['forget_recall@20']:.4f} / {mia:.3f}"


def summarize(path: Path) -> None:
    """Mean +- std over the seeds stored in ``path`` (the latest record per regime, seed
    and method), and per seed TRU's margin over each baseline on both axes."""
    records = latest(path)
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
