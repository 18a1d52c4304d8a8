"""The tiny dataset of unit tests and the conformance suite: one generator, as an MMRec
folder (:func:`write_tiny`) or loaded (:func:`tiny_dataset`, through the real loader).

Each user gets ``per_user`` distinct random items, split into training, one validation
and one test item; items no user trained on are added to training (user ``k mod U``)
so every id is used. Features: one standard-normal table ``[n_items, dim]`` per modality.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from harness.data.datasets import Dataset, load_dataset

MODALITIES = {"image": 12, "text": 8}


def write_tiny(folder: Path, n_users: int = 24, n_items: int = 30, per_user: int = 8,
               modalities: dict[str, int] | None = None, seed: int = 0, name: str = "tiny") -> Path:
    """Write a random but valid MMRec folder (``name.inter`` and ``<modality>_feat.npy``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=per_user, replace=False)
        labels = [0] * (per_user - 2) + [1, 2]
        rows += [(u, int(i), lab) for i, lab in zip(items, labels)]
    frame = pd.DataFrame(rows, columns=["userID", "itemID", "x_label"])
    missing = sorted(set(range(n_items)) - set(frame[frame.x_label == 0].itemID))
    extra = [(k % n_users, i, 0) for k, i in enumerate(missing)]
    frame = pd.concat([frame, pd.DataFrame(extra, columns=frame.columns)])
    frame = frame.drop_duplicates(["userID", "itemID"])
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / f"{name}.inter", sep="\t", index=False)
    for modality, dim in (MODALITIES if modalities is None else modalities).items():
        np.save(folder / f"{modality}_feat.npy", rng.standard_normal((n_items, dim)).astype(np.float32))
    return folder


def tiny_dataset(n_users: int = 30, n_items: int = 40, per_user: int = 8, seed: int = 0,
                 modalities: dict[str, int] | None = None) -> Dataset:
    """:func:`write_tiny` in a temporary folder, loaded with :func:`load_dataset`."""
    with tempfile.TemporaryDirectory() as folder:
        return load_dataset(write_tiny(Path(folder) / "tiny", n_users, n_items, per_user, modalities, seed))
