"""The cost curve at scale: seconds and peak memory of each phase on SYNTHETIC data of 1x,
10x and 100x ml100k's users and items, and how each grows per doubling.

Usage: python bench/scale.py [--sizes 1 10 100] [--steps 40] [--passes-full-up-to 10]
       [--epoch-full-up-to 10] [--threads 2] [--data-dir .cache/synthetic] [--timeout 5400]

The data are ``tru synthesize --scale S --seed 0`` folders (:mod:`harness.synthetic`:
power-law users and items, two planted modalities, 1,280 and 384 dims), made once under
``--data-dir``. The backbone is MGCN at its defaults, the deletion the interaction regime
(random 5%), the method settings TRU's and MMRecUn's defaults with TRU's stopping rule
off (as in ``bench/bench_tru_speed.py``), the model at its initialisation (no phase's
cost depends on the weights). Each phase runs in a fresh process, so its peak resident
memory (``ru_maxrss``) is its own; **peak MB** includes the process's libraries, the
loaded dataset and the model, and **+MB** is that minus the peak of a process that only
imports them (``base``).

Phases:

* ``load``: :func:`harness.data.datasets.load_dataset` (reading and validating the folder).
* ``build``: building MGCN, whose item-item kNN graphs (chunked, ``backbones/blocks/graph.py``)
  are most of it. Every later phase builds the model too, from kNN graphs this phase
  stored (``DATA_DIR/.knn/``); their seconds exclude the build.
* ``epoch``: one training epoch (BPR steps of 2,048 pairs, Adam, negative sampling).
  *Measured* with :func:`harness.protocol.training.train` (``max_epochs = 1``, which
  includes one validation pass) at sizes up to ``--epoch-full-up-to``; *projected* at every
  size as ``steps per epoch x`` the mean of ``--steps`` steps after two warm-up steps
  (the same steps, timed one by one, without the validation pass).
* ``evaluate``: full-ranking NDCG/recall@10,20 of every user with test items, all items
  scored (:func:`harness.protocol.evaluation.evaluate_model`).
* ``audit``: the per-model audit: the popularity-matched sample, the rank features of D_f
  and of the sample, and the cross-validated attack (:mod:`harness.protocol.audit`).
* ``tru`` / ``mmrecun``: one job at the shared budget (10 passes over D_f, batches of
  2,048). *Measured* at sizes up to ``--passes-full-up-to``; *projected* at every size as
  ``t(1 pass) + 9 x (t(2 passes) - t(1 pass))`` from two runs (the set-up: TRU's target,
  probes and isolation, counted once), after a warm-up run on one batch of D_f.

A phase that runs past ``--timeout`` seconds or fails prints why in its cell. Run it alone:
anything else on the cores distorts it. Per doubling: ``2^b`` where ``b`` is the slope of
log(value) on log(scale) between the two largest sizes that have the value.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("base", "load", "build", "epoch", "evaluate", "audit", "tru", "mmrecun")
SEED = 0
PASSES = 10


def folder_for(scale: float, data_dir: Path) -> Path:
    """The synthetic folder of ``scale``, made if missing."""
    from harness.synthetic import synthesize

    folder = data_dir / f"synthetic-{scale:g}x-seed{SEED}"
    if not folder.is_dir():
        data_dir.mkdir(parents=True, exist_ok=True)
        synthesize(scale, SEED, folder)
    return folder


# ----------------------------------------------------------------------------- one phase
def run_phase(phase: str, folder: Path, args) -> dict:
    """Run ``phase`` in this process; returns its figures (seconds; peak added by the caller)."""
    import torch

    torch.set_num_threads(args.threads)
    _imports()  # every phase carries the same libraries, so +MB over ``base`` is data and work
    if phase == "base":
        return {}
    from harness.data.datasets import load_dataset

    start = time.perf_counter()
    dataset = load_dataset(folder)
    if phase == "load":
        return {"seconds": time.perf_counter() - start} | {
            k: v for k, v in dataset.summary().items() if k in ("users", "items", "interactions")}
    from harness.protocol.models import build_backbone

    _reuse_knn_graphs(folder.parent / ".knn" / folder.name, read=phase != "build")
    start = time.perf_counter()
    model = build_backbone("mgcn", dataset, SEED)
    if phase == "build":
        return {"seconds": time.perf_counter() - start}
    if phase == "epoch":
        return _epoch(model, dataset, args)
    if phase == "evaluate":
        return _evaluate(model, dataset)
    if phase == "audit":
        return _audit(model, dataset)
    return _job(phase, model, dataset, args)


def _reuse_knn_graphs(store: Path, read: bool) -> None:
    """MGCN's item-item kNN graphs, computed once per dataset (in the ``build`` phase, which
    times them) and read back by every later phase: at 100x they take most of half an hour
    on 2 cores, and no later phase's figure includes them. Keyed by a hash of the features;
    ``build`` (``read`` False) always computes them."""
    import hashlib

    import torch

    import backbones.mgcn
    from backbones.blocks.graph import SparseMatrix, knn_graph

    def cached(features: torch.Tensor, k: int, chunk: int = 4096) -> SparseMatrix:
        digest = hashlib.sha256(features.numpy().tobytes()).hexdigest()[:16]
        path = store / f"{digest}-k{k}.pt"
        if read and path.is_file():
            crow, col, values, shape = torch.load(path, weights_only=True)
            return SparseMatrix.from_csr(torch.sparse_csr_tensor(crow, col, values, tuple(shape)))
        graph = knn_graph(features, k, chunk)
        store.mkdir(parents=True, exist_ok=True)
        csr = graph.csr
        torch.save((csr.crow_indices(), csr.col_indices(), csr.values(), list(csr.shape)), path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
        return graph

    backbones.mgcn.knn_graph = cached


def _imports() -> None:
    import harness.protocol.unlearning  # noqa: F401  (torch, the protocol, the backbones)
    import methods  # noqa: F401


def _epoch(model, dataset, args) -> dict:
    import torch

    from backbones.base import Batch
    from backbones.blocks.graph import UserItemGraph
    from backbones.blocks.sampling import NegativeSampler
    from harness.core.seeding import generator
    from backbones import BACKBONES
    from harness.protocol.training import TrainConfig, train

    config = TrainConfig.for_backbone(BACKBONES.get("mgcn"), max_epochs=1)
    pairs = torch.from_numpy(dataset.train)
    graph = UserItemGraph(pairs, model.n_users, model.n_items)
    steps_per_epoch = math.ceil(len(pairs) / config.batch_size)
    sampler, gen = NegativeSampler(graph.edges, model.n_items), generator(SEED)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    order = torch.randperm(len(graph.edges), generator=gen)
    model.train()
    times = []
    for step in range(min(args.steps + 2, steps_per_epoch)):  # the loop of train(), one step timed at a time
        begin = time.perf_counter()
        chosen = graph.edges[order[step * config.batch_size : (step + 1) * config.batch_size]]
        batch = Batch(graph, chosen[:, 0], chosen[:, 1], sampler.sample(chosen[:, 0], gen))
        loss = model.loss(batch)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        times.append(time.perf_counter() - begin)
    timed = times[2:] or times
    out = {"steps_per_epoch": steps_per_epoch, "steps_timed": len(timed),
           "projected": steps_per_epoch * sum(timed) / len(timed)}
    if dataset_scale(dataset) <= args.epoch_full_up_to:
        from harness.protocol.models import build_backbone

        fresh = build_backbone("mgcn", dataset, SEED)
        result = train(fresh, pairs, torch.from_numpy(dataset.valid), config, SEED, progress=False)
        out["seconds"] = result.seconds
    return out


def _evaluate(model, dataset) -> dict:
    import torch

    from backbones.blocks.graph import UserItemGraph
    from harness.protocol.evaluation import evaluate_model

    graph = UserItemGraph(torch.from_numpy(dataset.train), dataset.n_users, dataset.n_items)
    start = time.perf_counter()
    evaluate_model(model, graph, torch.from_numpy(dataset.test))
    return {"seconds": time.perf_counter() - start}


def _task(dataset, ratio: float = 0.05):
    from harness.data.regimes import make_task

    return make_task(dataset, "interaction", "random", ratio, SEED)


def _audit(model, dataset) -> dict:
    import torch

    from backbones.base import eval_embeddings
    from backbones.blocks.graph import UserItemGraph
    from harness.protocol.audit import attack, audit_sample, rank_features

    task = _task(dataset)
    graph = UserItemGraph(torch.from_numpy(task.retain), task.n_users, task.n_items)
    model.eval()
    users, items = eval_embeddings(model, graph)
    start = time.perf_counter()
    exclude = graph.user_items_csr()
    sample = audit_sample(dataset, task, seed=SEED)
    rank_features(users, items, torch.from_numpy(task.forget), exclude)
    attack(rank_features(users, items, sample.pairs, exclude), sample)
    return {"seconds": time.perf_counter() - start, "forget_pairs": len(task.forget)}


def _job(method: str, model, dataset, args) -> dict:
    import copy

    from methods import METHODS, Budget

    task = _task(dataset)
    extra = {"stop_tolerance": 0.0} if method == "tru" else {}

    def seconds(passes: int, on=task) -> float:
        instance = METHODS.get(method)(max_epochs=passes, **extra)
        start = time.perf_counter()
        instance.unlearn(copy.deepcopy(model), on, Budget(seed=SEED))
        return time.perf_counter() - start

    seconds(1, _task(dataset, min(0.05, 2048 / len(dataset.train))))  # warm-up (first-call costs) on one batch
    one, two = seconds(1), seconds(2)
    out = {"projected": one + (PASSES - 1) * (two - one), "forget_pairs": len(task.forget)}
    if dataset_scale(dataset) <= args.passes_full_up_to:
        out["seconds"] = seconds(PASSES)
    return out


def dataset_scale(dataset) -> float:
    from harness.synthetic import BASE_USERS

    return dataset.n_users / BASE_USERS


# ----------------------------------------------------------------------------- the driver
def measure(phase: str, folder: Path, args) -> dict:
    """``phase`` in a child process: its figures and peak MB, or ``{"error": why}``."""
    argv = [sys.executable, __file__, "--phase", phase, "--folder", str(folder), "--threads", str(args.threads),
            "--steps", str(args.steps), "--epoch-full-up-to", str(args.epoch_full_up_to),
            "--passes-full-up-to", str(args.passes_full_up_to)]
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=args.timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"> {args.timeout} s"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["exit code %d" % proc.returncode])[-1]
        return {"error": "killed (out of memory?)" if proc.returncode in (-9, 137) else last[:80]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def growth(sizes: list[float], values: list[float | None]) -> str:
    known = [(s, v) for s, v in zip(sizes, values) if v is not None and v > 0]
    if len(known) < 2:
        return "-"
    (s1, v1), (s2, v2) = known[-2], known[-1]
    return f"x{2 ** (math.log(v2 / v1) / math.log(s2 / s1)):.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1, 10, 100])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--epoch-full-up-to", type=float, default=10)
    parser.add_argument("--passes-full-up-to", type=float, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".cache" / "synthetic")
    parser.add_argument("--timeout", type=int, default=5400)
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:  # a child: one phase, its figures as one JSON line
        sys.path.insert(0, str(ROOT / "bench"))
        out = run_phase(args.phase, args.folder, args)
        out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out))
        return 0
    sizes = sorted(args.sizes)
    rows: dict[str, list[dict]] = {p: [] for p in PHASES}
    print(f"# python bench/scale.py --sizes {' '.join(f'{s:g}' for s in sizes)} (SYNTHETIC data, MGCN, "
          f"{args.threads} threads, one process per phase)\n", flush=True)
    shapes = []
    for scale in sizes:
        folder = folder_for(scale, args.data_dir)
        for phase in PHASES:
            rows[phase].append(measure(phase, folder, args))
            print(f"  {scale:g}x {phase}: {rows[phase][-1]}", file=sys.stderr, flush=True)
        loaded = rows["load"][-1]
        shapes.append(f"{scale:g}x: " + (f"{loaded['users']:,} users, {loaded['items']:,} items, "
                                         f"{loaded['interactions']:,} interactions" if "users" in loaded
                                         else loaded["error"]))
    print("Sizes: " + "; ".join(shapes) + ".\n")
    base = [r.get("peak_mb") for r in rows["base"]]
    head = " | ".join(f"{s:g}x s | {s:g}x peak MB (+MB)" for s in sizes)
    print(f"| phase | {head} | s per doubling | +MB per doubling |")
    print("|---|" + "---|---|" * len(sizes) + "---|---|")
    for phase in PHASES[1:]:
        cells, secs, added = [], [], []
        for i, r in enumerate(rows[phase]):
            if "error" in r:
                cells += [r["error"], "-"]
                secs.append(None)
                added.append(None)
                continue
            reference = base[i]
            seconds = r.get("seconds")
            shown = f"{seconds:.2f}" if seconds is not None else ""
            if "projected" in r:
                shown += f"{' / ' if shown else ''}{r['projected']:.1f} projected"
            cells += [shown, f"{r['peak_mb']:.0f} (+{max(r['peak_mb'] - (reference or 0), 0):.0f})"]
            secs.append(r.get("projected", seconds))
            added.append(max(r["peak_mb"] - (reference or 0), 1.0))
        print(f"| {phase} | " + " | ".join(cells) + f" | {growth(sizes, secs)} | {growth(sizes, added)} |")
    print("\n`base`: a process that imports torch, the harness and the methods and loads nothing: "
          + ", ".join(f"{s:g}x {b:.0f} MB" for s, b in zip(sizes, base) if b is not None) + ". "
          "Projected seconds: the epoch from timed steps, the jobs from 1 and 2 passes (module docstring); "
          "where both are shown the first is measured.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
