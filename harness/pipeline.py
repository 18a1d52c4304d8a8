"""Build a backbone for a dataset and train it, with a cache keyed by what it depends on.

The cache key is a hash of the data fingerprint, the exact training pairs, the
backbone name and hyperparameters, the training config, the seed and the code version,
so a deletion (different training pairs) can never hit a stale model.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import typing
from typing import Any
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from pydantic import ConfigDict, ValidationError, create_model

from backbones import BACKBONES
from backbones.base import Backbone
from harness.checkpoints import load_checkpoint, save_checkpoint
from harness.data import Dataset
from harness.errors import UserError
from harness.seeding import seeded
from harness.train import TrainConfig, TrainResult, default_device, train

CODE_VERSION = "0.1.0"
DEFAULT_CACHE = Path(".cache") / "models"


_NOT_HPARAMS = {"self", "n_users", "n_items", "features"}


def backbone_hparams(name: str) -> dict:
    """The keyword hyperparameters of a backbone with their defaults."""
    signature = inspect.signature(BACKBONES.get(name).__init__)
    return {k: p.default for k, p in signature.parameters.items() if k not in _NOT_HPARAMS}


def validate_hparams(name: str, hparams: dict) -> dict:
    """Check ``hparams`` against the backbone constructor's names and type hints.

    An unknown name or a value of the wrong type is a :class:`UserError` naming it.
    """
    cls = BACKBONES.get(name)
    known = backbone_hparams(name)
    for key in hparams:
        if key not in known:
            raise UserError(f"backbone '{name}': unknown hyperparameter '{key}' (valid: {', '.join(known)})")
    hints = typing.get_type_hints(cls.__init__)
    fields = {key: (hints.get(key, Any), default) for key, default in known.items()}
    model = create_model(f"{name}_hyperparameters", __config__=ConfigDict(extra="forbid"), **fields)
    try:
        return model(**hparams).model_dump(exclude_unset=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise UserError(f"backbone '{name}': hyperparameter '{key}': {first['msg']}") from None


def build_backbone(name: str, dataset: Dataset, seed: int, hparams: dict | None = None) -> Backbone:
    """Instantiate backbone ``name`` for ``dataset`` with parameters drawn from ``seed``."""
    cls = BACKBONES.get(name)
    hparams = validate_hparams(name, dict(hparams or {}))
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
    cache_dir: Path | None = DEFAULT_CACHE,
    progress: bool = True,
) -> TrainedModel:
    """Train (or load from the cache) ``backbone`` on ``train_pairs`` (default: D),
    early-stopping on ``valid_pairs`` (default: the dataset's validation split)."""
    device = device or default_device()
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
            "code": CODE_VERSION,
        }
    )
    if cache_dir is None:
        return _train(model, pairs, valid, config, seed, progress, dataset.name, backbone, None)
    path = Path(cache_dir) / f"{backbone}-{key}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):  # hosts sharing a cache train each model once
        if path.exists():
            state, meta = load_checkpoint(path)
            model.load_state_dict(state)
            return TrainedModel(model, None, meta, cached=True)
        return _train(model, pairs, valid, config, seed, progress, dataset.name, backbone, path)


def _train(model, pairs, valid, config, seed, progress, dataset_name, backbone, path) -> TrainedModel:
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
    if path is not None:
        save_checkpoint(path, result.state, meta)
    return TrainedModel(model, result, meta, cached=False)
