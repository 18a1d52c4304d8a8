"""The Ray runner's parallel speedup and its per-job overhead, measured side by side.

Usage: python bench/bench_runner.py [--dataset ml100k] [--backbone mgcn] [--repeats 2]

1. Speedup: the same jobs (3 regimes x 9 approximate methods, seed 0) through
   ``run_experiment`` with 1 actor of 1 CPU, then with 2 actors of 1 CPU each, on a
   local Ray of 2 CPUs; wall time of each run (references from the model cache; each
   actor loads and measures them once per task it serves).
2. Overhead: one regime's 9 jobs run by a :class:`ModelHost` in this process, and the
   same jobs sent one at a time to one actor hosting the same model with the same thread
   count (both warm: references already in memory); Ray's overhead per job is
   ``(actor time - direct time) / jobs`` and its share of a direct job's time.
Run the TRU/unlearning benches first (or accept that the first run trains the models).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

METHODS = ["graph_edit", "finetune", "neggrad", "neggrad_plus", "mmrecun", "tru", "tru-no-gate", "tru-no-scale",
           "tru-no-isolation"]


def experiment(dataset: str, backbone: str, actors: int, threads: int, regimes=("interaction", "user", "item")):
    from harness.distributed.experiment import experiment_from

    return experiment_from({
        "name": f"bench-{actors}x{threads}", "datasets": [dataset], "backbones": [backbone], "report_seeds": [0],
        "regimes": [{"regime": r} for r in regimes], "methods": [{"name": m} for m in METHODS],
        "resources": {"actors_per_model": actors, "num_cpus": threads, "num_gpus": 0}, "ray": {"num_cpus": 2},
    })


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="ml100k")
    parser.add_argument("--backbone", default="mgcn")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--part", choices=["speedup", "overhead", "both"], default="both")
    args = parser.parse_args()

    import ray

    from harness.distributed.cluster import connect
    from harness.distributed.experiment import RaySettings

    connect(RaySettings(num_cpus=2))
    if args.part != "overhead":
        speedup(args)
    if args.part != "speedup":
        overhead(args)
    ray.shutdown()


def speedup(args) -> None:
    from harness.distributed.runner import run_experiment

    print(f"## runner speedup ({args.dataset} / {args.backbone}, 27 jobs, local Ray of 2 CPUs)")
    print("| actors x CPUs | wall s | jobs/min |")
    print("|---|---|---|")
    walls = {}
    for actors in (1, 2):
        exp = experiment(args.dataset, args.backbone, actors, 1)
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            summary = run_experiment(exp, out, progress=False)
            walls[actors] = time.perf_counter() - start
        assert summary.errors == 0, "a job failed"
        print(f"| {actors} x 1 | {walls[actors]:.1f} | {summary.done / walls[actors] * 60:.1f} |", flush=True)
    print(f"speedup with 2 actors: {walls[1] / walls[2]:.2f}x (goal >= 1.6x)\n")


def overhead(args) -> None:
    """Direct and actor passes alternate (direct first on even repeats) to cancel drift."""
    import ray

    from harness.distributed.experiment import expand
    from harness.data.datasets import load_dataset
    from harness.distributed.host import ModelHost, remote_host

    exp = experiment(args.dataset, args.backbone, 1, 2, regimes=("user",))
    jobs = expand(exp)
    kwargs = dict(training=exp.training, hparams={}, audit_size=exp.audit_size, cache_dir=exp.cache_dir,
                  plugins=[], num_threads=2, budget=exp.budget, experiment=exp.name)
    host = ModelHost(load_dataset(exp.datasets[0]), args.backbone, 0, **kwargs)
    actor = remote_host(2, 0, 0).remote(ray.put(load_dataset(exp.datasets[0])), args.backbone, 0, **kwargs)
    host.run(jobs[0])
    ray.get(actor.run.remote(jobs[0]))  # both warm
    direct, remote = [], []
    for repeat in range(args.repeats):
        for path in (("direct", "actor") if repeat % 2 == 0 else ("actor", "direct")):
            start = time.perf_counter()
            for job in jobs:
                host.run(job) if path == "direct" else ray.get(actor.run.remote(job))
            (direct if path == "direct" else remote).append(time.perf_counter() - start)
    d, r = statistics.median(direct), statistics.median(remote)
    per_job = (r - d) / len(jobs)
    print(f"## Ray overhead per job ({len(jobs)} jobs of the user regime, 2 threads, median of {args.repeats})")
    print("| path | s for the jobs | s per job |")
    print("|---|---|---|")
    print(f"| direct call | {d:.2f} | {d / len(jobs):.3f} |")
    print(f"| actor call | {r:.2f} | {r / len(jobs):.3f} |")
    print(f"overhead per job: {per_job * 1000:.0f} ms = {per_job / (d / len(jobs)):.1%} of a job (goal < 5%)")


if __name__ == "__main__":
    main()
