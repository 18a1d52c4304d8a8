"""Sweep throughput and Tune's overhead per trial, measured side by side.

Usage: python bench/bench_tune.py [--dataset ml100k] [--backbone mgcn] [--regime user] [--trials 8]

1. Throughput: a ``--trials`` TRU sweep (TPE, two objectives) with 2 actors of 1 CPU on a
   local Ray of 2 CPUs: trials per minute (search only, no test re-evaluation).
2. Overhead: sweeps of ``trials/2`` and ``trials`` trials with 1 actor of 2 CPUs (the
   seeded sampler proposes the same first configurations in both), then the configurations
   of the longer one run one after another by a :class:`ModelHost` in this process with 2
   threads. Tune's overhead per trial is the extra time of the later trials over their
   direct calls, ``((T_n - T_n/2) - direct(trials n/2+1..n)) / (n/2)``; what remains is
   the fixed cost of starting a sweep.
References come from the model cache (any run on ml100k / MGCN fills it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings


def experiment(dataset, backbone, regime, actors, cpus):
    from harness.distributed.experiment import experiment_from

    return experiment_from({"name": "bench-tune", "datasets": [dataset], "backbones": [backbone],
                            "regimes": [{"regime": regime}], "resources": {"actors_per_model": actors,
                            "num_cpus": cpus, "num_gpus": 0}, "ray": {"num_cpus": 2}})


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="ml100k")
    parser.add_argument("--backbone", default="mgcn")
    parser.add_argument("--regime", default="user")
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()

    import ray

    from harness.distributed.cluster import connect
    from harness.distributed.experiment import RaySettings, make_job
    from harness.data.datasets import load_dataset
    from harness.distributed.host import ModelHost
    from harness.distributed.store import ResultsStore
    from tuning.sweep import run_sweep, trial_records

    connect(RaySettings(num_cpus=2))
    print(f"## TRU sweep on {args.dataset} / {args.backbone} / {args.regime}, {args.trials} trials")
    print("| setting | wall s | trials/min |")
    print("|---|---|---|")
    exp = experiment(args.dataset, args.backbone, args.regime, 2, 1)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        run_sweep(exp, "tru", args.trials, out, progress=False, retest=False)
        wall = time.perf_counter() - start
    print(f"| 2 actors x 1 CPU | {wall:.1f} | {args.trials / wall * 60:.1f} |", flush=True)

    exp = experiment(args.dataset, args.backbone, args.regime, 1, 2)
    walls, records = {}, None
    for n in (args.trials // 2, args.trials):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            summary = run_sweep(exp, "tru", n, out, progress=False, retest=False)
            walls[n] = time.perf_counter() - start
            records = trial_records(ResultsStore(out), summary.sweep).sort_values("started_at")
        print(f"| 1 actor x 2 CPUs, {n} trials | {walls[n]:.1f} | {n / walls[n] * 60:.1f} |", flush=True)
    host = ModelHost(load_dataset(exp.datasets[0]), args.backbone, 0, training=exp.training, hparams={}, audit_size=exp.audit_size,
                     cache_dir=exp.cache_dir, plugins=[], num_threads=2, budget=exp.budget)
    seconds = []
    start = time.perf_counter()
    for params in records["params"]:
        begin = time.perf_counter()
        host.run(make_job(exp, exp.datasets[0], args.backbone, 0, exp.regimes[0], "tru", json.loads(params)))
        seconds.append(time.perf_counter() - begin)
    direct = time.perf_counter() - start
    print(f"| the {args.trials} configurations, direct calls (2 threads, cold host) | {direct:.1f} | "
          f"{args.trials / direct * 60:.1f} |")
    half = args.trials // 2
    later = args.trials - half
    per_trial = ((walls[args.trials] - walls[half]) - sum(seconds[half:])) / later
    job = sum(seconds[half:]) / later
    print(f"Tune overhead per trial (trials {half + 1}..{args.trials}: the {args.trials}-trial sweep minus the "
          f"{half}-trial one, same seeded configurations, against their direct calls): {per_trial:.2f} s = "
          f"{per_trial / job:.1%} of a direct job of {job:.2f} s (goal < 10%)")
    print(f"fixed cost of a sweep (Ray Tune start, host actor start with its imports, study): "
          f"{walls[half] - sum(seconds[:half]) - half * per_trial:.1f} s")
    ray.shutdown()


if __name__ == "__main__":
    main()
