"""Pareto fronts of result records (pure functions over arrays; no plotting)."""

from __future__ import annotations

import numpy as np


def pareto_mask(values: np.ndarray, maximize: list[bool]) -> np.ndarray:
    """``[n]`` boolean mask of the non-dominated rows of ``values`` ``[n, k]``.

    Row ``a`` dominates row ``b`` when it is at least as good on every objective and
    strictly better on one (``maximize[j]`` says which way objective ``j`` is better).
    Equal rows do not dominate each other, so ties are all kept; rows with a NaN are
    never on the front.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(maximize):
        raise ValueError(f"values must be [n, {len(maximize)}], got {values.shape}")
    signed = values * np.where(maximize, 1.0, -1.0)  # larger is better on every column
    finite = ~np.isnan(signed).any(axis=1)
    better_eq = (signed[:, None, :] >= signed[None, :, :]).all(axis=2)  # [a, b]: a >= b everywhere
    strictly = (signed[:, None, :] > signed[None, :, :]).any(axis=2)
    dominates = better_eq & strictly & finite[:, None] & finite[None, :]
    return finite & ~dominates.any(axis=0)
