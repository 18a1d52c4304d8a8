"""Shared fixtures: tiny MMRec-format datasets written to temporary folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def write_mmrec(
    folder: Path,
    n_users: int = 24,
    n_items: int = 30,
    per_user: int = 8,
    modalities: dict[str, int] | None = None,
    seed: int = 0,
    name: str = "tiny",
) -> Path:
    """A random but valid MMRec folder: each user has ``per_user`` distinct items,
    split per user into train / one validation / one test, every id used."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=per_user, replace=False)
        labels = [0] * (per_user - 2) + [1, 2]
        rows += [(u, int(i), lab) for i, lab in zip(items, labels)]
    frame = pd.DataFrame(rows, columns=["userID", "itemID", "x_label"])
    # make every item appear in training (contiguous ids, no cold items)
    missing = sorted(set(range(n_items)) - set(frame[frame.x_label == 0].itemID))
    extra = [(k % n_users, i, 0) for k, i in enumerate(missing)]
    frame = pd.concat([frame, pd.DataFrame(extra, columns=frame.columns)])
    frame = frame.drop_duplicates(["userID", "itemID"])
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / f"{name}.inter", sep="\t", index=False)
    for modality, dim in (modalities if modalities is not None else {"image": 12, "text": 8}).items():
        np.save(folder / f"{modality}_feat.npy", rng.standard_normal((n_items, dim)).astype(np.float32))
    return folder


@pytest.fixture
def tiny_folder(tmp_path) -> Path:
    return write_mmrec(tmp_path / "tiny")


@pytest.fixture
def tiny(tiny_folder):
    from harness.data import load_dataset

    return load_dataset(tiny_folder)


@pytest.fixture
def make_mmrec(tmp_path):
    """``make_mmrec(name, **kwargs)`` writes a tiny folder (see :func:`write_mmrec`)."""
    return lambda name, **kwargs: write_mmrec(tmp_path / name, **kwargs)


@pytest.fixture
def ray_local():
    """A local Ray on 2 CPUs, started once and shared by the tests that need it."""
    import ray

    from harness.cluster import connect
    from harness.experiment import RaySettings

    connect(RaySettings(num_cpus=2, object_store_mb=128))
    yield ray


@pytest.fixture(scope="session", autouse=True)
def _stop_ray():
    yield
    import sys

    if "ray" in sys.modules:
        sys.modules["ray"].shutdown()


def write_experiment(path: Path, dataset: Path, **sections) -> Path:
    """A small experiment on ``dataset`` (LightGCN, 3 training epochs); ``sections``
    override top-level keys (TOML text per key)."""
    text = {
        "datasets": f'["{dataset}"]',
        "backbones": '["lightgcn"]',
        "seeds": "[0]",
        "plugins": '["methods.faults"]',
        "methods": '[{name = "graph_edit"}, {name = "mmrecun", params = {lr = 0.01}}]',
        "cache_dir": f'"{path.parent / "cache"}"',
        "regimes": '[{regime = "interaction", ratio = 0.2}, {regime = "user", ratio = 0.2}]',
        "training": "{max_epochs = 3, batch_size = 64}",
        "resources": "{actors_per_model = 1, num_cpus = 1, num_gpus = 0}",
        "ray": "{num_cpus = 2, object_store_mb = 128}",
    } | sections
    path.write_text("".join(f"{key} = {value}\n" for key, value in text.items() if value is not None))
    return path


@pytest.fixture
def experiment_file(tmp_path, tiny_folder):
    """``experiment_file(dataset=None, **sections)`` writes ``exp.toml`` (see :func:`write_experiment`)."""
    return lambda dataset=None, **sections: write_experiment(
        tmp_path / "exp.toml", tiny_folder if dataset is None else dataset, **sections)
