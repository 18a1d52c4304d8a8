"""TRU's cost against MMRecUn's at the same number of passes, and against retraining.

Usage: python bench/bench_tru_speed.py [--datasets ml100k tiktok] [--backbones mgcn]
       [--seed 100] [--repeats 3] [--threads 2] [--max-epochs 80]

For each (dataset, backbone, regime): the original model (training capped at
``--max-epochs``, from the model cache) is unlearned by ``mmrecun`` and by ``tru`` with
the same ``max_epochs`` (10, the shared budget) and TRU's stopping rule off, so both
take the same passes over D_f; each ``unlearn`` is timed ``--repeats`` times, the two
methods alternating, and the medians are printed with their ratio. TRU runs at its
defaults otherwise: the target, the 512-pair probes and isolation are all included.
``retrain s`` is the training time the retrained reference of that task took (recorded
in the model cache when it was trained; trained here if missing), and ``speedup`` is
``retrain s / TRU s``. Run it alone: anything else on the cores distorts the ratio.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from harness.core.paths import DEFAULT_CACHE
from harness.data.datasets import load_dataset
from harness.data.regimes import make_task
from harness.protocol.unlearning import train_reference
from methods import METHODS, Budget

PASSES = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["ml100k", "tiktok"])
    parser.add_argument("--backbones", nargs="+", default=["mgcn"])
    parser.add_argument("--regimes", nargs="+", default=["interaction", "user", "item"])
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-epochs", type=int, default=80)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    kwargs = dict(train_overrides={"max_epochs": args.max_epochs}, cache_dir=DEFAULT_CACHE, progress=False)
    print(f"# TRU vs MMRecUn unlearn seconds at {PASSES} passes (python bench/bench_tru_speed.py, "
          f"{args.threads} threads, medians of {args.repeats}, alternating)\n")
    print("| dataset | backbone | regime | D_f pairs | mmrecun s | tru s | ratio | retrain s | speedup |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.datasets:
        dataset = load_dataset(name)
        for backbone in args.backbones:
            original = train_reference(dataset, backbone, args.seed, **kwargs).model
            for regime in args.regimes:
                task = make_task(dataset, regime, "random", 0.05, args.seed)
                seconds = {"mmrecun": [], "tru": []}
                for _ in range(args.repeats):
                    for method, params in (("mmrecun", {"max_epochs": PASSES}),
                                           ("tru", {"max_epochs": PASSES, "stop_tolerance": 0.0})):
                        instance = METHODS.get(method)(**params)
                        model = copy.deepcopy(original)
                        start = time.perf_counter()
                        instance.unlearn(model, task, Budget(seed=args.seed))
                        seconds[method].append(time.perf_counter() - start)
                mm, tru = (statistics.median(seconds[m]) for m in ("mmrecun", "tru"))
                retrain = train_reference(dataset, backbone, args.seed, task, **kwargs).meta["train_seconds"]
                print(f"| {name} | {backbone} | {regime} | {len(task.forget)} | {mm:.2f} | {tru:.2f} | {tru / mm:.2f} | "
                      f"{retrain:.0f} | {retrain / tru:.0f}x |", flush=True)


if __name__ == "__main__":
    main()
