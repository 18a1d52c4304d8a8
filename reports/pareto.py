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


#: the reference point of every hypervolume in the reports, the same for all methods:
#: (test NDCG@20, forget KS) = (0, 1). NDCG 0 is the worst retained quality; the forget KS
#: (the Kolmogorov-Smirnov statistic of the deleted pairs' rank percentiles against the
#: retrained model's) lies in [0, 1], and at 1 a method ranks the deleted pairs with no
#: overlap with retraining (0: ranked as retraining ranks them). One point's hypervolume
#: is its rectangle with the reference, N@20 * (1 - KS); several points': their union
REFERENCE = (0.0, 1.0)


def hypervolume_2d(points: np.ndarray, maximize: tuple[bool, bool] = (True, False),
                   reference: tuple[float, float] = REFERENCE) -> float:
    """Area dominated by ``points`` ``[n, 2]`` and bounded by ``reference``.

    Each objective is turned into a gain over the reference (``x - ref`` when maximised,
    ``ref - x`` when minimised); points without a positive gain on both add nothing.
    Sorting by the first gain, descending, the area is ``sum_i a_i * max(0, b_i - b*)``
    with ``b*`` the largest second gain seen so far.
    """
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    points = points[~np.isnan(points).any(axis=1)]
    sign = np.where(maximize, 1.0, -1.0)
    gains = (points - np.asarray(reference)) * sign
    gains = gains[(gains > 0).all(axis=1)]
    area, best = 0.0, 0.0
    for a, b in gains[np.argsort(-gains[:, 0], kind="stable")]:
        if b > best:
            area += a * (b - best)
            best = b
    return float(area)
