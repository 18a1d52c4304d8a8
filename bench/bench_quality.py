"""Train each backbone to its early stop and print test quality against the references.

Usage: python bench/bench_quality.py [--datasets ml100k tiktok] [--backbones ...]
Prints one markdown row per (dataset, backbone) with the seed, best epoch, epochs run,
seconds, s/epoch and validation/test Recall@20 and NDCG@20, next to the reference
figures measured on the same split (docs/architecture.md, evaluation protocol) and an item-popularity baseline.
Histories are written to bench/results/quality-<dataset>-<backbone>.json.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import torch

from harness.data.datasets import load_dataset
from harness.protocol.evaluation import metrics_from_scores
from backbones.blocks.graph import UserItemGraph
from harness.protocol.models import train_backbone
from backbones.blocks.csr import pair_mask
from harness.protocol.evaluation import evaluate_model

REFERENCE = {  # test Recall@20 / NDCG@20 of the reference implementations on this split
    ("ml100k", "lightgcn"): (0.177, 0.137),
    ("ml100k", "mgcn"): (0.169, 0.130),
    ("ml100k", "miggt"): (0.181, 0.138),
    ("tiktok", "mgcn"): (0.101, 0.045),
    ("tiktok", "miggt"): (0.104, 0.043),
}


def popularity(dataset) -> dict:
    """Item popularity (training counts) as the score of every user."""
    counts = torch.bincount(torch.from_numpy(dataset.train[:, 1]), minlength=dataset.n_items).float()
    exclude = pair_mask(torch.from_numpy(dataset.train), dataset.n_users, dataset.n_items)
    truth = pair_mask(torch.from_numpy(dataset.test), dataset.n_users, dataset.n_items)
    return metrics_from_scores(lambda rows: counts.expand(len(rows), -1), exclude, truth)


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=["ml100k", "tiktok"])
    parser.add_argument("--backbones", nargs="*", default=["lightgcn", "mgcn", "miggt"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-epochs", type=int)
    parser.add_argument("--progress", action="store_true", help="progress bar on stderr")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    print("| dataset | backbone | seed | best epoch | epochs run | train s | s/epoch | valid R@20 | test R@20 | test N@20 | reference R@20 / N@20 | ratio R@20 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.datasets:
        dataset = load_dataset(name)
        pop = popularity(dataset)
        print(f"| {name} | popularity | - | - | - | - | - | - | {pop['recall@20']:.4f} | {pop['ndcg@20']:.4f} | - | - |", flush=True)
        graph = UserItemGraph(torch.from_numpy(dataset.train), dataset.n_users, dataset.n_items)
        for backbone in args.backbones:
            overrides = {"max_epochs": args.max_epochs} if args.max_epochs else {}
            trained = train_backbone(dataset, backbone, args.seed, train_overrides=overrides,
                                     cache_dir=None, progress=args.progress)
            test = evaluate_model(trained.model, graph, torch.from_numpy(dataset.test))
            meta, result = trained.meta, trained.result
            ref = REFERENCE.get((name, backbone))
            ref_text = f"{ref[0]:.3f} / {ref[1]:.3f}" if ref else "-"
            ratio = f"{test['recall@20'] / ref[0]:.3f}" if ref else "-"
            print(
                f"| {name} | {backbone} | {args.seed} | {meta['best_epoch']} | {meta['epochs_run']} | "
                f"{meta['train_seconds']:.0f} | {meta['seconds_per_epoch']:.2f} | {meta['valid']['recall@20']:.4f} | "
                f"{test['recall@20']:.4f} | {test['ndcg@20']:.4f} | {ref_text} | {ratio} |",
                flush=True,
            )
            (out / f"quality-{name}-{backbone}.json").write_text(
                json.dumps({"meta": meta, "test": test, "history": result.history})
            )


if __name__ == "__main__":
    main()
