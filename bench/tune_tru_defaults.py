"""Choose TRU's defaults on the validation split (never the test split).

Usage: python bench/tune_tru_defaults.py [--dataset ml100k] [--backbone mgcn] [--seed 0]

Grid over lr x layer_budget x gate_strength (other hyperparameters at their current
defaults), every regime. The score of a configuration is how far it stays from the
retrained reference on validation data and on D_f, averaged over regimes:

    d = |valid_ndcg - retrain_valid_ndcg| / retrain_valid_ndcg
        + |forget_recall - retrain_forget_recall| / original_forget_recall

(lower is better: a perfect method behaves like the retrained model). The chosen
default is the lowest distance among configurations whose validation NDCG@20 stays
within 5% of the retrain's in every regime (a default should not trade a third of the
retained quality for forgetting). Test figures are neither read nor printed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import warnings
from pathlib import Path

import torch

from harness.core.paths import DEFAULT_CACHE
from harness.data.datasets import load_dataset
from harness.data.regimes import make_task
from harness.protocol.unlearning import prepare, run_method


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="ml100k")
    parser.add_argument("--backbone", default="mgcn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, nargs="+", default=[1e-3, 1e-2, 5e-2])
    parser.add_argument("--layer-budget", type=float, nargs="+", default=[0.02, 0.1, 0.3])
    parser.add_argument("--gate-strength", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE))
    args = parser.parse_args()
    torch.set_num_threads(2)
    dataset = load_dataset(args.dataset)
    refs = {
        regime: prepare(dataset, args.backbone, make_task(dataset, regime, "random", 0.05, args.seed), args.seed,
                        cache_dir=Path(args.cache_dir), progress=False)
        for regime in ("interaction", "user", "item")
    }
    reference = {r: ref.retrain_measure.metrics | {"original_forget": ref.original_measure.metrics["forget_recall@20"]}
                 for r, ref in refs.items()}
    print("| lr | layer_budget | gate_strength | " + " | ".join(f"{r} valid N@20 / forget R@20" for r in refs) + " | distance |")
    print("|---|---|---|" + "---|" * len(refs) + "---|")
    rows = []
    for lr, rho, gamma in itertools.product(args.lr, args.layer_budget, args.gate_strength):
        params = {"lr": lr, "layer_budget": rho, "gate_strength": gamma}
        cells, distance = [], 0.0
        for regime, ref in refs.items():
            r = run_method(ref, "tru", params)
            base = reference[regime]
            distance += abs(r["retain_valid_ndcg@20"] - base["retain_valid_ndcg@20"]) / base["retain_valid_ndcg@20"]
            distance += abs(r["forget_recall@20"] - base["forget_recall@20"]) / base["original_forget"]
            cells.append(f"{r['retain_valid_ndcg@20']:.4f} / {r['forget_recall@20']:.4f}")
        distance /= len(refs)
        keeps_quality = all(
            float(c.split(" / ")[0]) >= 0.95 * reference[r]["retain_valid_ndcg@20"] for c, r in zip(cells, refs)
        )
        rows.append((distance, params, keeps_quality))
        print(f"| {lr:g} | {rho:g} | {gamma:g} | " + " | ".join(cells) + f" | {distance:.4f} |", flush=True)
    print("| retrain | - | - | " + " | ".join(
        f"{reference[r]['retain_valid_ndcg@20']:.4f} / {reference[r]['forget_recall@20']:.4f}" for r in refs) + " | 0 |")
    best = min(rows, key=lambda row: row[0])
    print(f"\nlowest distance: {json.dumps(best[1])} distance {best[0]:.4f}")
    kept = [row for row in rows if row[2]]
    if kept:
        chosen = min(kept, key=lambda row: row[0])
        print(f"chosen (lowest distance with validation NDCG@20 >= 0.95 x retrain in every regime): "
              f"{json.dumps(chosen[1])} distance {chosen[0]:.4f}")


if __name__ == "__main__":
    main()
