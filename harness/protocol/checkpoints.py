"""Atomic checkpoint files (temp file + rename), loaded with ``weights_only=True``."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch


def save_checkpoint(path: Path, state: dict, meta: dict) -> None:
    """Write ``{"state": state, "meta": json}`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save({"state": state, "meta": json.dumps(meta)}, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> tuple[dict, dict]:
    """``(state, meta)`` of a checkpoint written by :func:`save_checkpoint`."""
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    return blob["state"], json.loads(blob["meta"])
