"""TRU's rank statistics (``methods.tru_v2.rank_stats``, TRU v2) against the sort-based version it
replaced, side by side on one dataset's real exclusion masks.

Usage: python bench/bench_rank_stats.py [--dataset tiktok] [--pairs 2048] [--threads 2]

Both compute, for ``--pairs`` random training pairs, the percentile, candidate mean and
std and the score at ``p*``; the replaced version sorted every user's row for the last,
the current one takes one ``kthvalue``. Median of alternating timings per ``p*``; the
outputs are checked equal before timing.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from harness.data.datasets import load_dataset
from backbones.blocks.csr import dense_rows
from backbones.blocks.graph import UserItemGraph
from methods.tru_v2 import rank_stats


def rank_stats_by_sorting(users, items, pairs, exclude, p_star):
    """The implementation before the kthvalue one (same outputs)."""
    with torch.no_grad():
        unique, inverse = torch.unique(pairs[:, 0], return_inverse=True)
        scores = users[unique] @ items.T
        candidate = ~dense_rows(exclude, unique)
        n_cand = candidate.sum(1).clamp(min=2).float()
        mean = scores.masked_fill(~candidate, 0.0).sum(1) / n_cand
        var = ((scores - mean[:, None]).pow(2) * candidate).sum(1) / (n_cand - 1)
        std = var.sqrt().clamp(min=1e-8)
        s = scores[inverse, pairs[:, 1]]
        row_scores = scores[inverse].masked_fill(~candidate[inverse], float("-inf"))
        p = 1.0 - (row_scores > s[:, None]).sum(1).float() / (n_cand[inverse] - 1)
        ordered = scores.masked_fill(~candidate, float("-inf")).sort(dim=1, descending=True).values
        position = ((1.0 - p_star) * (n_cand - 1)).round().long()
        at = ordered.gather(1, position[:, None]).squeeze(1)[inverse]
        return p, mean[inverse], std[inverse], at


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="tiktok")
    parser.add_argument("--pairs", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.dataset)
    train = torch.from_numpy(dataset.train)
    exclude = UserItemGraph(train, dataset.n_users, dataset.n_items).user_items_csr()
    gen = torch.Generator().manual_seed(0)
    users, items = torch.randn(dataset.n_users, 64, generator=gen), torch.randn(dataset.n_items, 64, generator=gen)
    pairs = train[torch.randperm(len(train), generator=gen)[: args.pairs]]
    print(f"{args.dataset}: {args.pairs} pairs of {len(torch.unique(pairs[:, 0]))} users x {dataset.n_items} items, "
          f"{args.threads} threads")
    print("| p* | sort-based s | kthvalue s | speedup |")
    print("|---|---|---|---|")
    for p_star in (0.5, 0.775, 0.91):
        new, old = rank_stats(users, items, pairs, exclude, p_star), rank_stats_by_sorting(users, items, pairs, exclude, p_star)
        for a, b in zip(new, old):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
        times = {"old": [], "new": []}
        for _ in range(args.repeats):
            for name, fn in (("old", rank_stats_by_sorting), ("new", rank_stats)):
                start = time.perf_counter()
                fn(users, items, pairs, exclude, p_star)
                times[name].append(time.perf_counter() - start)
        old_s, new_s = statistics.median(times["old"]), statistics.median(times["new"])
        print(f"| {p_star} | {old_s:.3f} | {new_s:.3f} | {old_s / new_s:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
