"""Datasets in the MMRec folder format: loading, validation, fingerprints.

A dataset folder holds exactly one ``<name>.inter`` file (tab-separated, header line,
columns ``userID``, ``itemID``, ``x_label`` with 0 = train, 1 = validation, 2 = test,
optionally ``rating`` and ``timestamp``) and any number of ``<modality>_feat.npy``
float arrays whose row ``i`` belongs to item ``i``. Modality names are read from the
file names: nothing here knows "image" or "text".

Every problem found is raised as :class:`harness.core.errors.UserError` with one line naming
the file and the problem.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.core.errors import UserError
from harness.core.paths import DATA_DIR

REQUIRED_COLUMNS = ("userID", "itemID", "x_label")
OPTIONAL_COLUMNS = ("rating", "timestamp")
FEATURE_SUFFIX = "_feat.npy"
GENERATED_TAG = "generated"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A validated dataset.

    ``train``, ``valid`` and ``test`` are int64 arrays of shape ``[n, 2]`` holding
    ``(user, item)`` pairs; ``features`` maps a modality name to a float32 array
    ``[n_items, dim]``; ``generated`` names the modalities that were synthesised rather
    than shipped; ``fingerprint`` is a SHA-256 of all of it (cache keys, records).
    """

    name: str
    n_users: int
    n_items: int
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    features: dict[str, np.ndarray]
    generated: frozenset[str] = field(default_factory=frozenset)
    fingerprint: str = ""

    @property
    def modalities(self) -> list[str]:
        return list(self.features)

    def modality_labels(self) -> list[str]:
        """Modality names as shown to people: generated ones carry ``(generated)``."""
        return [f"{m}({GENERATED_TAG})" if m in self.generated else m for m in self.features]

    def summary(self) -> dict:
        n = len(self.train) + len(self.valid) + len(self.test)
        return {
            "dataset": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": n,
            "density": n / (self.n_users * self.n_items),
            "modalities": self.modality_labels(),
        }


def shipped_datasets() -> list[str]:
    """Names of the datasets under ``data/``."""
    return sorted(p.name for p in DATA_DIR.iterdir() if p.is_dir() and list(p.glob("*.inter")))


def resolve(dataset: str | Path) -> Path:
    """A shipped dataset name or a path to an MMRec folder -> that folder."""
    path = Path(dataset)
    if path.is_dir():
        return path
    if (DATA_DIR / str(dataset)).is_dir():
        return DATA_DIR / str(dataset)
    raise UserError(
        f"dataset '{dataset}': not a shipped dataset ({', '.join(shipped_datasets())}) "
        "nor a folder"
    )


def load_dataset(
    dataset: str | Path,
    generated_features: dict[str, int] | None = None,
    generation_seed: int = 0,
) -> Dataset:
    """Load and validate a dataset folder (or shipped name).

    ``generated_features`` maps modality names to dimensions to synthesise (see
    :func:`generate_features`); they may not clash with shipped modalities.
    """
    folder = resolve(dataset)
    inter_files = sorted(folder.glob("*.inter"))
    if len(inter_files) != 1:
        raise UserError(f"{folder}: expected exactly one .inter file, found {len(inter_files)}")
    inter_path = inter_files[0]
    train, valid, test, n_users, n_items = _read_interactions(inter_path)
    features = {}
    for feat_path in sorted(folder.glob(f"*{FEATURE_SUFFIX}")):
        name = feat_path.name[: -len(FEATURE_SUFFIX)]
        features[name] = _read_features(feat_path, n_items)
    generated = frozenset()
    if generated_features:
        clash = sorted(set(generated_features) & set(features))
        if clash:
            raise UserError(f"{folder}: generated modality '{clash[0]}' clashes with a shipped one")
        for name, dim in generated_features.items():
            features[name] = generate_features(train, n_users, n_items, dim, generation_seed)
        generated = frozenset(generated_features)
    fingerprint = _fingerprint(train, valid, test, features, generated, generation_seed)
    return Dataset(
        name=inter_path.stem,
        n_users=n_users,
        n_items=n_items,
        train=train,
        valid=valid,
        test=test,
        features=features,
        generated=generated,
        fingerprint=fingerprint,
    )


def _read_interactions(path: Path):
    try:
        frame = pd.read_csv(path, sep="\t")
    except Exception as exc:  # pandas raises many types for malformed text
        raise UserError(f"{path}: cannot be read as tab-separated text ({exc})") from None
    columns = list(frame.columns)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise UserError(f"{path}: missing column '{missing[0]}' (has {', '.join(columns)})")
    extra = [c for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if extra:
        raise UserError(
            f"{path}: unexpected column '{extra[0]}' (allowed: "
            f"{', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)})"
        )
    if len(set(columns)) != len(columns):
        raise UserError(f"{path}: duplicate column names")
    for col in REQUIRED_COLUMNS:
        if not pd.api.types.is_integer_dtype(frame[col]):
            raise UserError(f"{path}: column '{col}' must hold integers")
    labels = set(np.unique(frame["x_label"]).tolist())
    if not labels <= {0, 1, 2}:
        bad = sorted(labels - {0, 1, 2})[0]
        raise UserError(f"{path}: x_label value {bad} (allowed: 0 train, 1 valid, 2 test)")
    users = frame["userID"].to_numpy(np.int64)
    items = frame["itemID"].to_numpy(np.int64)
    for col, ids in (("userID", users), ("itemID", items)):
        unique = np.unique(ids)
        if len(unique) == 0 or unique[0] != 0 or unique[-1] != len(unique) - 1:
            raise UserError(
                f"{path}: column '{col}' ids are not contiguous from 0 "
                f"({len(unique)} distinct ids, range {unique.min() if len(unique) else '-'}"
                f"..{unique.max() if len(unique) else '-'})"
            )
    n_users, n_items = int(users.max()) + 1, int(items.max()) + 1
    pairs = np.stack([users, items], axis=1)
    label = frame["x_label"].to_numpy()
    splits = []
    for value, split in ((0, "train"), (1, "validation"), (2, "test")):
        part = pairs[label == value]
        if len(part) == 0:
            raise UserError(f"{path}: the {split} split (x_label {value}) is empty")
        splits.append(np.ascontiguousarray(part))
    train, valid, test = splits
    has_train = np.zeros(n_users, dtype=bool)
    has_train[train[:, 0]] = True
    for split, part in (("test", test), ("validation", valid)):
        orphans = np.unique(part[~has_train[part[:, 0]], 0])
        if len(orphans):
            raise UserError(
                f"{path}: user {orphans[0]} has {split} items but no training items "
                f"({len(orphans)} such users)"
            )
    return train, valid, test, n_users, n_items


def _read_features(path: Path, n_items: int) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise UserError(f"{path}: cannot be read as a .npy array ({exc})") from None
    if array.ndim != 2:
        raise UserError(f"{path}: expected a 2-D array [items, dim], got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise UserError(f"{path}: expected numbers, got dtype {array.dtype}")
    if array.shape[0] != n_items:
        raise UserError(f"{path}: {array.shape[0]} rows but the interactions have {n_items} items")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        bad = int(np.argwhere(~np.isfinite(array))[0, 0])
        raise UserError(f"{path}: NaN or inf values (first in row {bad})")
    return array


def generate_features(
    train: np.ndarray, n_users: int, n_items: int, dim: int, seed: int
) -> np.ndarray:
    """Synthetic item features for datasets that ship none (labelled ``generated``).

    ``x_i = normalise(R_i^T G) + 0.5 * eps_i`` with ``R`` the binary user-item training
    matrix, ``G`` a seeded Gaussian ``[n_users, dim]`` projection and ``eps`` Gaussian
    noise: content that correlates with behaviour the way real content features do,
    without being the behaviour. Useful for scale and speed, not for content claims.
    """
    if dim < 1:
        raise UserError(f"generated feature dimension must be >= 1, got {dim}")
    rng = np.random.default_rng(seed)
    projection = rng.standard_normal((n_users, dim)).astype(np.float32)
    signal = np.zeros((n_items, dim), dtype=np.float32)
    np.add.at(signal, train[:, 1], projection[train[:, 0]])
    signal /= np.linalg.norm(signal, axis=1, keepdims=True).clip(min=1e-12)
    noise = rng.standard_normal((n_items, dim)).astype(np.float32) / np.sqrt(dim)
    return signal + 0.5 * noise


def _fingerprint(train, valid, test, features, generated, generation_seed) -> str:
    digest = hashlib.sha256()
    for part in (train, valid, test):
        digest.update(np.ascontiguousarray(part, dtype=np.int64).tobytes())
        digest.update(b"|")
    for name in sorted(features):
        tag = f"{name}:{GENERATED_TAG}:{generation_seed}" if name in generated else name
        digest.update(tag.encode())
        digest.update(np.ascontiguousarray(features[name]).tobytes())
    return digest.hexdigest()[:16]
