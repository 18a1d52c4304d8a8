"""Seeded randomness without global side effects."""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | str = "cpu"):
    """Run a block with torch's RNG seeded to ``seed``, then restore the caller's RNG.

    Dropout and parameter initialisation draw from torch's global generator; forking it
    (``torch.random.fork_rng``) makes them deterministic per seed while leaving the
    caller's random state untouched. The CUDA generator of ``device`` is forked too.
    """
    device = torch.device(device)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        torch.manual_seed(seed)
        yield


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded to ``seed`` (sampling happens on CPU, then moves)."""
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen
