"""Evaluation cost against its lower bound, and seconds per training epoch.

Usage: python bench/bench_speed.py [--datasets ml100k tiktok] [--threads 2]

1. Full evaluation (``metrics_from_scores`` from final embeddings with CSR masks:
   scoring, masking, top-K and all metrics at K = 10, 20) against the bare lower bound
   measured in the same run on the same embeddings: one dense ``users x items`` score
   matmul, a precomputed dense mask applied, and a top-20. Median of repeated timings,
   alternating the two so machine noise hits both alike. The ratio is printed.
2. Seconds per training epoch of each backbone (median of 3 epochs, no evaluation).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from backbones import BACKBONES
from harness.data.datasets import load_dataset
from harness.protocol.evaluation import embedding_scorer, metrics_from_scores
from harness.protocol.models import build_backbone
from backbones.blocks.csr import pair_mask
from harness.protocol.training import TrainConfig, train


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def eval_ratio(dataset, repeats: int) -> tuple[float, float, float]:
    gen = torch.Generator().manual_seed(0)
    users = torch.randn(dataset.n_users, 64, generator=gen)
    items = torch.randn(dataset.n_items, 64, generator=gen)
    exclude = pair_mask(torch.from_numpy(dataset.train), dataset.n_users, dataset.n_items)
    truth = pair_mask(torch.from_numpy(dataset.test), dataset.n_users, dataset.n_items)
    dense_exclude = exclude.to_dense()

    def bound():
        scores = users @ items.T
        scores.masked_fill_(dense_exclude, float("-inf"))
        scores.topk(20, dim=1)

    def full():
        metrics_from_scores(embedding_scorer(users, items), exclude, truth, ks=(10, 20))

    full(), bound()  # warm up
    ours, base = [], []
    for _ in range(repeats):
        ours.append(timed(full))
        base.append(timed(bound))
    t_ours, t_base = statistics.median(ours), statistics.median(base)
    return t_ours, t_base, t_ours / t_base


def epoch_seconds(dataset, backbone: str) -> float:
    model = build_backbone(backbone, dataset, 0)
    config = TrainConfig.for_backbone(BACKBONES.get(backbone), max_epochs=1, eval_every=10**6)
    pairs, valid = torch.from_numpy(dataset.train), torch.from_numpy(dataset.valid)
    times = []
    for _ in range(3):
        result = train(model, pairs, valid, config, seed=0, progress=False)
        times.append(result.seconds)
    return statistics.median(times)


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=["ml100k", "tiktok"])
    parser.add_argument("--backbones", nargs="+", default=["lightgcn", "mgcn", "miggt"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads: {args.threads}")
    print("| dataset | full evaluation s | lower bound s (matmul + mask + top-20) | ratio |")
    print("|---|---|---|---|")
    for name in args.datasets:
        ours, base, ratio = eval_ratio(load_dataset(name), args.repeats)
        print(f"| {name} | {ours:.4f} | {base:.4f} | {ratio:.2f}x |", flush=True)
    print()
    print("| dataset | backbone | s/epoch (training only, median of 3) |")
    print("|---|---|---|")
    for name in args.datasets:
        dataset = load_dataset(name)
        for backbone in args.backbones:
            print(f"| {name} | {backbone} | {epoch_seconds(dataset, backbone):.2f} |", flush=True)


if __name__ == "__main__":
    main()
