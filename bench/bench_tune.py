"""Sweep throughput and Tune's overhead per trial, measured side by side.

Usage: python bench/bench_tune.py [--dataset ml100k] [--backbone mgcn] [--regime user] [--trials 8]

1. Throughput: a ``--trials`` TRU sweep (TPE, two objectives) with 2 actors of 1 CPU on a
   local Ray of 2 CPUs: trials per minute (search only, no test re-evaluation).
2. Overhead: a sweep with 1 actor of 2 CPUs, then the same configurations (read back from
   its records) run one after another by a :class:`ModelHost` in this process with 2
   threads; both start cold (the host loads the references once). Overhead per trial is
   ``(sweep time - direct time) / trials``.
References come from the model cache (run bench/bench_tru.py first).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path


def experiment(dataset, backbone, regime, actors, cpus):
    from harness.experiment import Experiment, check_names

    exp = Experiment(name="bench-tune", datasets=[dataset], backbones=[backbone], seeds=[0],
                     regimes=[{"regime": regime, "selection": "random", "ratio": 0.05}],
                     resources={"actors_per_model": actors, "num_cpus": cpus, "num_gpus": 0}, ray={"num_cpus": 2})
    return check_names(exp, Path("bench"))


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="ml100k")
    parser.add_argument("--backbone", default="mgcn")
    parser.add_argument("--regime", default="user")
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()

    import ray

    from harness.cluster import connect
    from harness.experiment import RaySettings, make_job
    from harness.host import ModelHost
    from harness.store import ResultsStore
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
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        summary = run_sweep(exp, "tru", args.trials, out, progress=False, retest=False)
        tuned = time.perf_counter() - start
        records = trial_records(ResultsStore(out), summary.sweep)
    print(f"| 1 actor x 2 CPUs | {tuned:.1f} | {args.trials / tuned * 60:.1f} |")
    start = time.perf_counter()
    host = ModelHost(exp.datasets[0], args.backbone, 0, training=exp.training, hparams={}, audit_size=exp.audit_size,
                     cache_dir=exp.cache_dir, plugins=[], num_threads=2, budget=exp.budget.model_dump())
    for params in records["params"]:
        host.run(make_job(exp, exp.datasets[0], args.backbone, 0, exp.regimes[0], "tru", json.loads(params)))
    direct = time.perf_counter() - start
    print(f"| same configurations, direct calls (2 threads) | {direct:.1f} | {args.trials / direct * 60:.1f} |")
    per_trial = (tuned - direct) / args.trials
    print(f"Tune overhead per trial: {per_trial:.2f} s = {per_trial / (direct / args.trials):.1%} of a direct job "
          "(goal < 10%)")
    ray.shutdown()


if __name__ == "__main__":
    main()
