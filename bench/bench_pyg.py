"""The ``pyg`` adapter (LGConv over a PyG ``edge_index``) against the built-in hand-written
CSR ``lightgcn``: seconds per training epoch, measured side by side, and test NDCG@20.

Usage: python bench/bench_pyg.py [--datasets ml100k tiktok] [--epochs 3] [--quality-epochs 10] [--threads 2]

1. Seconds per training epoch: both models built from seed 0, then ``--epochs`` rounds of
   one ``train()`` epoch each (one pass over the training pairs with Adam at the reference
   settings, plus the single validation pass ``train`` makes at its last epoch, as in
   bench_speed.py), the order alternating every round so machine noise hits both alike.
   Medians and the ratio pyg / lightgcn are printed.
2. Where the time goes: one forward + backward of the 2-layer propagation alone
   (``[E_0; A E_0; A^2 E_0]`` mean, summed), median of repeats: the built-in CSR matmul,
   the adapter's path (LGConv on ``edge_index``: gather, scale, scatter-add, and
   ``gcn_norm`` on every layer), and, for reference only, LGConv given a ``torch.sparse``
   CSR ``adj_t`` instead of ``edge_index`` (PyG's ``message_and_aggregate`` / spmm path;
   not what the adapter does).
3. Test NDCG@20 of both after training from seed 0 with the reference settings capped at
   ``--quality-epochs`` epochs (early stopping on validation inside that cap).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from backbones import BACKBONES
from backbones.blocks.graph import UserItemGraph
from backbones.pyg import PyGBackbone
from harness.data.datasets import load_dataset
from harness.protocol.evaluation import evaluate_model
from harness.protocol.models import build_backbone, train_backbone
from harness.protocol.training import TrainConfig, train

NAMES = ("lightgcn", "pyg")


def epoch_seconds(dataset, epochs: int) -> dict[str, float]:
    models = {name: build_backbone(name, dataset, 0) for name in NAMES}
    pairs, valid = torch.from_numpy(dataset.train), torch.from_numpy(dataset.valid)
    times: dict[str, list[float]] = {name: [] for name in NAMES}
    for round_ in range(epochs):
        for name in NAMES if round_ % 2 == 0 else NAMES[::-1]:
            config = TrainConfig.for_backbone(BACKBONES.get(name), max_epochs=1, eval_every=10**6)
            times[name].append(train(models[name], pairs, valid, config, seed=round_, progress=False).seconds)
    return {name: statistics.median(t) for name, t in times.items()}


def propagation_seconds(dataset, repeats: int) -> dict[str, float]:
    from torch_geometric.utils import to_torch_csr_tensor

    graph = UserItemGraph(torch.from_numpy(dataset.train), dataset.n_users, dataset.n_items)
    lightgcn, pyg = build_backbone("lightgcn", dataset, 0), build_backbone("pyg", dataset, 0)
    edge_index = PyGBackbone.edge_index(graph)
    adj_t = to_torch_csr_tensor(edge_index.flip(0), size=(graph.n_nodes, graph.n_nodes))

    def with_adj_t():
        x = torch.cat([pyg.user_embedding, pyg.item_embedding])
        outputs = [x]
        for conv in pyg.convs:
            outputs.append(conv(outputs[-1], adj_t))
        torch.stack(outputs).mean(0).sum().backward()

    variants = {
        "lightgcn (CSR)": lambda: sum(t.sum() for t in lightgcn(graph)).backward(),
        "pyg LGConv, edge_index (the adapter)": lambda: sum(t.sum() for t in pyg(graph)).backward(),
        "pyg LGConv, torch.sparse CSR adj_t (reference only)": with_adj_t,
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():
        fn()  # warm up (builds and caches the normalised matrix / edge_index)
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def quality(dataset, epochs: int) -> dict[str, tuple[float, int, float]]:
    graph = UserItemGraph(torch.from_numpy(dataset.train), dataset.n_users, dataset.n_items)
    out = {}
    for name in NAMES:
        trained = train_backbone(dataset, name, 0, cache_dir=None, progress=False,
                                 train_overrides={"max_epochs": epochs})
        ndcg = evaluate_model(trained.model, graph, torch.from_numpy(dataset.test))["ndcg@20"]
        out[name] = (ndcg, trained.result.best_epoch, trained.result.seconds_per_epoch)
    return out


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=["ml100k", "tiktok"])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per backbone")
    parser.add_argument("--repeats", type=int, default=10, help="timed propagations per variant")
    parser.add_argument("--quality-epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import torch_geometric

    print(f"torch {torch.__version__}, torch_geometric {torch_geometric.__version__}, threads: {args.threads}")
    datasets = {name: load_dataset(name) for name in args.datasets}
    print()
    print(f"Seconds per training epoch (median of {args.epochs}, order alternating):")
    print()
    print("| dataset | lightgcn (CSR) s/epoch | pyg (LGConv) s/epoch | ratio pyg / lightgcn |")
    print("|---|---|---|---|")
    for name, dataset in datasets.items():
        t = epoch_seconds(dataset, args.epochs)
        print(f"| {name} | {t['lightgcn']:.2f} | {t['pyg']:.2f} | {t['pyg'] / t['lightgcn']:.1f}x |", flush=True)
    print()
    print(f"| dataset | 2-layer propagation, forward + backward | s (median of {args.repeats}) | ratio to CSR |")
    print("|---|---|---|---|")
    for name, dataset in datasets.items():
        t = propagation_seconds(dataset, args.repeats)
        base = t["lightgcn (CSR)"]
        for variant, seconds in t.items():
            print(f"| {name} | {variant} | {seconds:.4f} | {seconds / base:.1f}x |", flush=True)
    print()
    print(f"| dataset | backbone | test NDCG@20 ({args.quality_epochs} epochs max, seed 0) | best epoch | s/epoch |")
    print("|---|---|---|---|---|")
    for name, dataset in datasets.items():
        for backbone, (ndcg, best, seconds) in quality(dataset, args.quality_epochs).items():
            print(f"| {name} | {backbone} | {ndcg:.4f} | {best} | {seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
