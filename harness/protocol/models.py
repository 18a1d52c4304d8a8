"""Build a backbone for a dataset and train it, with a cache keyed by what it depends on.

The cache key is a hash of the data fingerprint, the exact training pairs, the
backbone name and hyperparameters, the training config, the seed and the code version
(a hash of the sources a model depends on, :mod:`harness.core.versions`), the kind of
device it trains on, the torch version and the cache's file format, so a deletion
(different training pairs) can never hit a stale model, nor a GPU run a CPU-trained one.
The cache is a folder or a URI (:class:`harness.storage.model_cache.ModelCache`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backbones import BACKBONES
from backbones.base import Backbone
from harness.core.devices import pick_device
from harness.core.errors import UserError
from harness.core.paths import DEFAULT_CACHE
from harness.core.seeding import seeded
from harness.core.versions import model_code_version, modules_of
from harness.data.datasets import Dataset
from harness.protocol.training import TrainConfig, TrainResult, train
from harness.storage.model_cache import CHECKPOINT_FORMAT, ModelCache, as_cache


def build_backbone(name: str, dataset: Dataset, seed: int, hparams: dict | None = None) -> Backbone:
    """Instantiate backbone ``name`` for ``dataset`` with parameters drawn from ``seed``."""
    cls = BACKBONES.get(name)
    hparams = cls.validate_hparams(dict(hparams or {}))
    if len(dataset.features) < cls.min_modalities:
        raise UserError(
            f"backbone '{name}' needs at least {cls.min_modalities} content modality; dataset "
            f"'{dataset.name}' has none (add --generated-features, e.g. image:128)"
        )
    features = {m: torch.from_numpy(f) for m, f in dataset.features.items()}
    with seeded(seed):
        return cls(dataset.n_users, dataset.n_items, features, **hparams)


@dataclass
class TrainedModel:
    model: Backbone
    result: TrainResult | None
    meta: dict
    cached: bool


def cache_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def train_backbone(
    dataset: Dataset,
    backbone: str,
    seed: int,
    hparams: dict | None = None,
    train_overrides: dict | None = None,
    train_pairs: np.ndarray | None = None,
    valid_pairs: np.ndarray | None = None,
    device: torch.device | None = None,
    cache_dir: ModelCache | str | Path | None = DEFAULT_CACHE,
    progress: bool = True,
) -> TrainedModel:
    """Train (or load from the cache ``cache_dir``: a folder, a URI or a cache; None: no
    caching) ``backbone`` on ``train_pairs`` (default: D), early-stopping on
    ``valid_pairs`` (default: the dataset's validation split)."""
    device = device or pick_device()
    config = TrainConfig.for_backbone(BACKBONES.get(backbone), **(train_overrides or {}))
    pairs = torch.from_numpy(np.ascontiguousarray(dataset.train if train_pairs is None else train_pairs))
    valid = torch.from_numpy(np.ascontiguousarray(dataset.valid if valid_pairs is None else valid_pairs))
    model = build_backbone(backbone, dataset, seed, hparams).to(device)
    key = cache_key(
        {
            "data": dataset.fingerprint,
            "pairs": hashlib.sha256(pairs.numpy().tobytes()).hexdigest(),
            "valid": hashlib.sha256(valid.numpy().tobytes()).hexdigest(),
            "backbone": backbone,
            "hparams": hparams or {},
            "config": config.model_dump(),
            "seed": seed,
            "code": model_code_version(modules_of(BACKBONES.get(backbone), Backbone)),
            "device": torch.device(device).type,
            "torch": torch.__version__,
            "format": CHECKPOINT_FORMAT,
        }
    )
    cache = as_cache(cache_dir)
    if cache is None:
        return _train(model, pairs, valid, config, seed, progress, dataset.name, backbone)
    name = f"{backbone}-{key}.pt"
    with cache.turn(name):  # hosts sharing a cache train each model once
        stored = cache.load(name)
        if stored is not None:
            state, meta = stored
            model.load_state_dict(state)
            return TrainedModel(model, None, meta, cached=True)
        trained = _train(model, pairs, valid, config, seed, progress, dataset.name, backbone)
        cache.save(name, trained.result.state, trained.meta)
        return trained


def _train(model, pairs, valid, config, seed, progress, dataset_name, backbone) -> TrainedModel:
    result = train(
        model, pairs, valid, config, seed, progress=progress,
        description=f"{dataset_name}/{backbone}",
    )
    meta = {
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "train_seconds": result.seconds,
        "seconds_per_epoch": result.seconds_per_epoch,
        "valid": result.valid,
        "config": config.model_dump(),
    }
    return TrainedModel(model, result, meta, cached=False)
