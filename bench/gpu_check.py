"""One short check of the GPU path, for a machine with a GPU (exits 0 on one without).

Usage: python bench/gpu_check.py [--epochs 10] [--out runs/gpu-check]

1. Starts a local Ray on this machine and runs the quickstart's jobs
   (``examples/quickstart.toml``) on GPU actors: ``num_gpus = 0.5``, two actors per
   model, so two actors share each GPU. Training is capped at ``--epochs`` (the
   quickstart's 80-epoch references would not fit a short device lease); the cap is
   printed beside the figures.
2. Checks that every record is ``ok`` with ``device`` ``cuda`` and that
   ``CUDA_VISIBLE_DEVICES`` in this process is what it was before the run (the harness
   sets no device variable; Ray sets it in each actor's own process, and the suite's
   source test checks that no module of the harness names it).
3. Prints, for ml100k/MGCN, the seconds of one training epoch (median of 3; ``train``
   also ranks the validation split once, at its last epoch) and of one full evaluation
   (median of 5, every user against every item, K = 10 and 20) on the GPU against the
   CPU (all cores), measured in this run.

Models are trained into a temporary cache, not the working directory's.

On a machine without CUDA it says so and exits 0 (nothing is run). A failed check exits 1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def epoch_and_eval_seconds(dataset, device) -> tuple[float, float]:
    """Median seconds of one MGCN training epoch and of one full evaluation on ``device``."""
    import torch

    from backbones import BACKBONES
    from backbones.blocks.graph import UserItemGraph
    from harness.protocol.evaluation import evaluate_model
    from harness.protocol.models import build_backbone
    from harness.protocol.training import TrainConfig, train

    model = build_backbone("mgcn", dataset, 0).to(device)
    config = TrainConfig.for_backbone(BACKBONES.get("mgcn"), max_epochs=1, eval_every=10**6)
    pairs, valid = torch.from_numpy(dataset.train), torch.from_numpy(dataset.valid)
    epochs = [train(model, pairs, valid, config, seed=0, progress=False).seconds for _ in range(3)]
    graph, test = UserItemGraph(pairs, dataset.n_users, dataset.n_items), torch.from_numpy(dataset.test)
    evals = []
    for _ in range(6):  # the first is a warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        evaluate_model(model, graph, test)
        if device.type == "cuda":
            torch.cuda.synchronize()
        evals.append(time.perf_counter() - start)
    return statistics.median(epochs), statistics.median(evals[1:])


def run_quickstart_on_gpus(epochs: int, out: Path, cache: Path) -> list[str]:
    """Run the quickstart on GPU actors into ``out`` (models cached in ``cache``); the
    failed checks, in words."""
    import pandas as pd

    from harness.distributed.experiment import load_experiment
    from harness.distributed.runner import run_experiment

    exp = load_experiment(ROOT / "examples" / "quickstart.toml")
    exp = exp.model_copy(update={"training": exp.training | {"max_epochs": epochs}, "cache_dir": str(cache),
                                 "resources": exp.resources.model_copy(update={"num_gpus": 0.5,
                                                                               "actors_per_model": 2})})
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    summary = run_experiment(exp, out, resume=True, progress=False)
    frame = pd.read_parquet(out)
    failures = []
    if summary.interrupted or len(frame) != summary.total:
        failures.append(f"{len(frame)} records of {summary.total} jobs")
    bad = frame[frame["status"] != "ok"]
    if len(bad):
        failures.append(f"{len(bad)} records not ok, e.g. {bad.iloc[0]['method']}: {bad.iloc[0]['error']}")
    devices = sorted(frame["device"].dropna().astype(str).unique())
    if frame["device"].isna().any() or not devices or not all(d.startswith("cuda") for d in devices):
        failures.append(f"record devices {devices} ({int(frame['device'].isna().sum())} missing), expected cuda")
    if os.environ.get("CUDA_VISIBLE_DEVICES") != before:
        failures.append(f"CUDA_VISIBLE_DEVICES changed in the driver: {before!r} -> "
                        f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r}")
    print(f"quickstart on GPU actors (num_gpus 0.5, 2 actors per model, training capped at {epochs} epochs): "
          f"{len(frame)} records, devices {devices}, {summary.seconds:.0f} s", flush=True)
    return failures


def main() -> int:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="training cap of the quickstart's models")
    parser.add_argument("--out", default=None, help="results folder (default: a temporary one)")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device on this machine (torch {torch.__version__}); nothing to check")
        return 0
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    name = torch.cuda.get_device_name(0)
    print(f"gpu_check on {torch.cuda.device_count()} x {name}, torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        failures = run_quickstart_on_gpus(args.epochs, Path(args.out or Path(scratch) / "out"), Path(scratch) / "cache")
    from harness.data.datasets import load_dataset

    dataset = load_dataset("ml100k")
    cpu_epoch, cpu_eval = epoch_and_eval_seconds(dataset, torch.device("cpu"))
    gpu_epoch, gpu_eval = epoch_and_eval_seconds(dataset, torch.device("cuda"))
    print(f"\nml100k / mgcn, measured side by side in this run (CPU: {torch.get_num_threads()} threads)\n")
    print("| phase | CPU s | GPU s | CPU / GPU |\n|---|---|---|---|")
    print(f"| one training epoch (with its one validation ranking) | {cpu_epoch:.2f} | {gpu_epoch:.2f} | {cpu_epoch / gpu_epoch:.1f}x |")
    print(f"| full evaluation | {cpu_eval:.3f} | {gpu_eval:.3f} | {cpu_eval / gpu_eval:.1f}x |")
    for failure in failures:
        print(f"FAILED: {failure}")
    print("gpu_check: " + ("all checks passed" if not failures else f"{len(failures)} checks failed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
