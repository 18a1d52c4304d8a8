"""Training a shard set on 2 actors against 1, measured side by side in one run.

Usage: python bench/bench_shards.py [--dataset ml100k] [--backbone mgcn] [--shards 8] [--epochs 10] [--repeats 2]

The set is SISA's original on the dataset (``--shards`` random user shards of ``D``,
seed 0, :func:`methods.sharding.shard_jobs`), trained by
:func:`harness.distributed.shards.train_set` (the runner's path) on a local Ray of 2
CPUs: once with 1 :class:`harness.distributed.host.ModelHost` actor of 1 CPU, once with 2,
alternating ``--repeats`` times, each time into a fresh, empty model cache (so every
shard is trained, never loaded). Training is capped at ``--epochs`` epochs (stated in
the output) so that a repeat takes minutes. Prints each wall time, the speed-up
(median 1-actor wall / median 2-actor wall) and the sum of the shards' own training
seconds under each setting (how much slower a shard trains when two share the cores).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import warnings


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml100k")
    parser.add_argument("--backbone", default="mgcn")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import ray

    from harness.data.datasets import load_dataset
    from harness.distributed.cluster import connect
    from harness.distributed.experiment import RaySettings
    from harness.distributed.host import remote_host
    from harness.distributed.shards import train_set
    from methods.sharding import random_partition, shard_jobs

    connect(RaySettings(num_cpus=2))
    dataset = load_dataset(args.dataset)
    shipped = ray.put(dataset)  # as the runner ships it (harness.distributed.host.ship_datasets)
    part = random_partition(dataset.train, dataset.n_users, dataset.n_items, args.shards, "user", seed=0)
    jobs = shard_jobs(part, dataset.train, dataset.valid, 0)
    training = {"max_epochs": args.epochs, "patience": args.epochs}
    walls: dict[int, list[float]] = {1: [], 2: []}
    totals: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.repeats):
        for actors in (1, 2):
            with tempfile.TemporaryDirectory() as cache:
                host = remote_host(1, 0, 0)
                hosts = [host.remote(shipped, args.backbone, 0, training=training, hparams={}, audit_size=100,
                                     cache_dir=cache, plugins=[], num_threads=1) for _ in range(actors)]
                ray.get([h.info.remote() for h in hosts])  # started and loaded before the clock runs
                seconds, cached, wall = train_set(hosts, jobs)
                assert not any(cached)
                for h in hosts:
                    ray.kill(h)
            walls[actors].append(wall)
            totals[actors].append(sum(seconds))
    one, two = statistics.median(walls[1]), statistics.median(walls[2])
    print(f"# {args.shards} shards of {args.dataset} / {args.backbone} (random by user, seed 0), "
          f"training capped at {args.epochs} epochs, {args.repeats} alternating repeats, local Ray of 2 CPUs\n")
    print("| actors (1 CPU each) | wall s per repeat | median wall s | sum of shard training s (median) |")
    print("|---|---|---|---|")
    for actors in (1, 2):
        print(f"| {actors} | {', '.join(f'{w:.1f}' for w in walls[actors])} | {statistics.median(walls[actors]):.1f} | "
              f"{statistics.median(totals[actors]):.1f} |")
    print(f"\nspeed-up of 2 actors over 1: {one / two:.2f}x (goal: at least 1.6x)")
    ray.shutdown()


if __name__ == "__main__":
    main()
