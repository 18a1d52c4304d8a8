"""Re-choose the defaults of every method with a tunable step by one procedure.

Usage: python bench/choose_defaults.py [--trials 16] [--out runs/defaults-ml100k-mgcn] [--methods NAME ...]

Re-running continues the sweeps stored in ``--out`` (each ends with exactly ``--trials`` trials).

The procedure, the same for finetune, neggrad, neggrad_plus, mmrecun, tru, ifru, scif and
gif (``--methods`` runs some of them): a sweep of
``--trials`` trials (TPE, sampler seed 0, the default objectives: validation NDCG@20 up,
``forget_ks`` down) over the method's searched hyperparameters, where each trial runs on
every *development* task of ``examples/defaults-ml100k-mgcn.toml`` (ml100k / MGCN, seeds
100 and 101, the three regimes) and its objectives are the means over those six tasks.
The default is the front configuration nearest the retrained model
(:func:`tuning.sweep.nearest_to_retraining`). No report seed and no test figure is read.

Prints one Markdown table (``bench/results/defaults-ml100k-mgcn.md`` holds the last one);
the chosen values are then written into the methods' declarations by hand.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from harness.core.paths import PROJECT  # noqa: E402
from harness.distributed.cluster import ray_session  # noqa: E402
from harness.distributed.experiment import MethodSpec, load_experiment  # noqa: E402
from harness.distributed.store import ResultsStore  # noqa: E402
from harness.protocol.records import objectives  # noqa: E402
from methods import METHODS  # noqa: E402
from tuning.sweep import front_of, nearest_to_retraining, run_sweep, sweep_name, trial_records  # noqa: E402

METHOD_NAMES = ("finetune", "neggrad", "neggrad_plus", "mmrecun", "tru", "ifru", "scif", "gif")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--out", default="runs/defaults-ml100k-mgcn")
    parser.add_argument("--methods", nargs="+", default=list(METHOD_NAMES), choices=METHOD_NAMES)
    args = parser.parse_args()
    experiment = load_experiment(PROJECT / "examples" / "defaults-ml100k-mgcn.toml")
    out = Path(args.out).resolve()
    store = ResultsStore(out)
    objs = objectives(experiment.tune.objectives)
    with ray_session(experiment, None, out):
        for name in args.methods:
            mine = experiment.model_copy(update={"methods": [MethodSpec(name=name)]})
            run_sweep(mine, name, args.trials, out, resume=True, progress=False, retest=False)
    print(f"# Defaults chosen on development tasks (python bench/choose_defaults.py --trials {args.trials})\n")
    print(f"ml100k / MGCN, development seeds {experiment.development_seeds}, regimes "
          f"{', '.join(r.regime for r in experiment.regimes)} (random 5%); training capped at "
          f"{experiment.training.get('max_epochs')} epochs; unlearning budget {experiment.budget.epochs} epochs, "
          f"batch {experiment.budget.batch_size}. {args.trials} TPE trials per method (sampler seed "
          f"{experiment.tune.seed}); a trial's figures are means over the 6 development tasks; the default is the "
          "front configuration nearest the retrained model.\n")
    print("| method | trials | front | valid N@20 | retrain valid N@20 | forget KS | previous defaults | chosen |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.methods:
        records = trial_records(store, sweep_name(experiment, name))
        front = front_of(records, objs)
        best = nearest_to_retraining(front, objs)
        if best is None:
            print(f"| {name} | {records['trial_id'].nunique()} | 0 | - | - | - | - | no trial with every objective |")
            continue
        cls = METHODS.get(name)
        searched = cls.searched()
        previous = {h.name: h.default for h in cls.hyperparameters if h.name in searched}
        chosen = {k: v for k, v in json.loads(best["params"]).items() if k in searched}
        print(f"| {name} | {records['trial_id'].nunique()} | {len(front)} | {best['retain_valid_ndcg@20']:.4f} | "
              f"{best['retain_valid_ndcg@20_target']:.4f} | {best['forget_ks']:.3f} | `{json.dumps(previous)}` | "
              f"`{json.dumps(_rounded(chosen))}` |")


def _rounded(params: dict) -> dict:
    out = {}
    for key, value in params.items():
        if isinstance(value, float):
            value = float(f"{value:.3g}")
        elif isinstance(value, str) and value.startswith("{"):
            value = json.dumps({k: float(f"{v:.3g}") for k, v in json.loads(value).items()}, sort_keys=True)
        out[key] = value
    return out


if __name__ == "__main__":
    main()
