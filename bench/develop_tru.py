"""Compare method configurations on development tasks only (the evidence behind TRU's design).

Usage:
    python bench/develop_tru.py --datasets ml100k --backbones mgcn miggt --seeds 100 \
        --configs bench/tru_v3_designs.json [--threads 1] [--max-epochs 80] [--jsonl out.jsonl]

``--configs``: a JSON object ``{"label": {"method": name, "params": {...}}}``; an
optional ``"class": {attribute: value}`` runs a subclass with those class attributes
(design variants such as TRU's ``item_target``). Each
configuration runs on every (dataset, backbone, regime, seed) task; the references (the
original and the retrained model, training capped at ``--max-epochs`` like the compare
examples) come from the model cache. Seeds must be development seeds: a report seed
(0-99) is refused, because design choices may never read a report task. The audit uses
validation non-members (development tasks) and no test figure is printed.

Prints one Markdown table per task and, per configuration, the mean over tasks of
validation NDCG@20, forget KS, |PrivLeak|, agreement@20, ``epochs_run`` and seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from harness.core.paths import DEFAULT_CACHE
from harness.data.datasets import load_dataset
from harness.data.regimes import make_task
from harness.protocol.unlearning import prepare, run_method
from methods import METHODS
from methods.base import Budget

FIRST_DEVELOPMENT_SEED = 100
COLUMNS = ["retain_valid_ndcg@20", "forget_ks", "abs_privleak", "agreement@20", "forget_gap@20", "unlearn_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["ml100k"])
    parser.add_argument("--backbones", nargs="+", default=["mgcn"])
    parser.add_argument("--regimes", nargs="+", default=["interaction", "user", "item"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[100])
    parser.add_argument("--configs", required=True)
    parser.add_argument("--only", nargs="*", help="labels of --configs to run (default: all)")
    parser.add_argument("--max-epochs", type=int, default=80)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jsonl", help="append every record here")
    args = parser.parse_args()
    if any(s < FIRST_DEVELOPMENT_SEED for s in args.seeds):
        sys.exit(f"--seeds: {args.seeds} includes a report seed (below {FIRST_DEVELOPMENT_SEED})")
    torch.set_num_threads(args.threads)
    configs = json.loads(Path(args.configs).read_text())
    if args.only:
        configs = {k: configs[k] for k in args.only}
    for label, config in configs.items():
        if config.get("class"):  # a design variant: the method with other class attributes, under its label
            METHODS.register(label)(type(label, (METHODS.get(config["method"]),), dict(config["class"])))
            config["method"] = label
    rows = []
    for name in args.datasets:
        dataset = load_dataset(name)
        for backbone in args.backbones:
            for regime in args.regimes:
                for seed in args.seeds:
                    task = make_task(dataset, regime, "random", 0.05, seed)
                    refs = prepare(dataset, backbone, task, seed, train_overrides={"max_epochs": args.max_epochs},
                                   cache_dir=DEFAULT_CACHE, progress=False)
                    for label, config in configs.items():
                        record = run_method(refs, config["method"], config.get("params", {}), Budget())
                        if record.get("status") == "error":
                            print(f"{label} on {name}/{backbone}/{regime}/{seed}: {record['error']}", file=sys.stderr)
                            continue
                        record |= {"label": label, "abs_privleak": abs(record["privleak"]),
                                   "epochs_run": json.loads(record["decisions"]).get("epochs_run", np.nan)}
                        rows.append(record)
                        if args.jsonl:  # without any test-split figure: designs never read them
                            with open(args.jsonl, "a") as out:
                                out.write(json.dumps({k: v for k, v in record.items() if "test" not in k},
                                                     default=str) + "\n")
                        print(f"{name}/{backbone}/{regime}/{seed} {label}: " + ", ".join(
                            f"{c} {record[c]:.4f}" for c in COLUMNS), flush=True)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return
    frame["cell"] = frame["dataset"] + "/" + frame["backbone"] + "/" + frame["regime"]
    print(f"\n## Development tasks: seeds {args.seeds}, training cap {args.max_epochs} epochs\n")
    for cell, part in frame.groupby("cell", sort=False):
        target = part.iloc[0]["retrain_retain_valid_ndcg@20"]
        print(f"### {cell} (retrain valid N@20 {target:.4f})\n")
        print(_markdown(part.groupby("label", sort=False)[COLUMNS + ["epochs_run"]].mean()))
    print("### mean over cells\n")
    print(_markdown(frame.groupby("label", sort=False)[COLUMNS + ["epochs_run"]].mean()))


def _markdown(table: pd.DataFrame) -> str:
    head = "| config | " + " | ".join(table.columns) + " |\n|---|" + "---|" * len(table.columns) + "\n"
    return head + "".join(f"| {label} | " + " | ".join(f"{v:.4f}" for v in row) + " |\n"
                          for label, row in table.iterrows())


if __name__ == "__main__":
    main()
