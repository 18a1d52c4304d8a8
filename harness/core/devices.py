"""The one place that chooses a torch device."""

from __future__ import annotations

import torch


def pick_device(use_gpu: bool = True) -> torch.device:
    """``cuda`` when ``use_gpu`` and a CUDA device is visible, else ``cpu``. On a Ray actor the
    visible devices are the ones Ray assigned; the harness never sets device variables."""
    return torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
