"""Deletion regimes: which training interactions a deletion request removes.

A :class:`methods.base.ForgetTask` holds the forget set ``D_f``, the retained set ``D_r = D \\ D_f``,
the affected users and items, and builds the retained graph ``G_r``. It is a pure
function of (dataset, regime, selection, ratio, seed), or of an explicit request file.

Regimes and selections (``ratio`` is a share of the regime's unit):

* ``interaction``: a share of training interactions. ``random``: uniform;
  ``core``: interactions of the most popular items first; ``edge``: of the least
  popular items first (ties broken by the seed).
* ``user``: all training interactions of a share of users. ``core``: the most active
  users; ``edge``: the least active; ``random``: uniform. The users are gone: they
  also leave retained evaluation.
* ``item``: all training interactions of a share of items ("target items"), with
  ``core`` / ``edge`` / ``random`` by training popularity.
* ``request``: the ``userID,itemID`` pairs of a CSV file (a real user's request).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from harness.core.errors import UserError
from harness.data.datasets import Dataset
from methods.base import ForgetTask

REGIMES = ("interaction", "user", "item")
SELECTIONS = ("random", "core", "edge")


def _ordered(counts: np.ndarray, selection: str, rng: np.random.Generator) -> np.ndarray:
    """Indices ordered for ``selection``: by count desc (core) / asc (edge), ties random."""
    noise = rng.random(len(counts))
    if selection == "random":
        return np.argsort(noise, kind="stable")
    sign = -1 if selection == "core" else 1
    return np.lexsort((noise, sign * counts))


def make_task(dataset: Dataset, regime: str, selection: str = "random", ratio: float = 0.05, seed: int = 0) -> ForgetTask:
    """Build the forget task of ``regime``/``selection``/``ratio``; deterministic in ``seed``."""
    if regime not in REGIMES:
        raise UserError(f"regime '{regime}': unknown (valid: {', '.join(REGIMES)})")
    if selection not in SELECTIONS:
        raise UserError(f"selection '{selection}': unknown (valid: {', '.join(SELECTIONS)})")
    if not 0.0 < ratio < 1.0:
        raise UserError(f"ratio {ratio}: must be strictly between 0 and 1")
    rng = np.random.default_rng(seed)
    train = dataset.train
    item_pop = np.bincount(train[:, 1], minlength=dataset.n_items)
    user_act = np.bincount(train[:, 0], minlength=dataset.n_users)
    if regime == "interaction":
        n = int(round(ratio * len(train)))
        order = _ordered(item_pop[train[:, 1]], selection, rng)
        mask = np.zeros(len(train), dtype=bool)
        mask[order[:n]] = True
    else:
        column, counts = (0, user_act) if regime == "user" else (1, item_pop)
        candidates = np.flatnonzero(counts > 0)
        n = int(round(ratio * len(candidates)))
        chosen = candidates[_ordered(counts[candidates], selection, rng)[:n]]
        mask = np.isin(train[:, column], chosen)
    if n == 0 or not mask.any():
        raise UserError(
            f"regime '{regime}' selection '{selection}' ratio {ratio}: selects nothing on '{dataset.name}'"
        )
    if regime == "user" and mask.all():
        raise UserError(f"regime 'user' ratio {ratio}: would delete every user")
    return _task(dataset, regime, selection, ratio, seed, mask)


#: step ``t``'s draw uses seed ``seed + STEP_SEED_OFFSET * (t - 1)``: step 1 is the single request of ``seed``
STEP_SEED_OFFSET = 100_003


def make_steps(dataset: Dataset, regime: str, selection: str = "random", ratio: float = 0.05, steps: int = 2,
               seed: int = 0) -> list[tuple[ForgetTask, ForgetTask]]:
    """A sequence of ``steps`` deletion requests, each of ``ratio`` of the original
    units (interactions, users or items of ``D``), drawn by ``selection`` from what the
    earlier requests left. Per step ``t``, ``(request, cumulative)``:

    * ``request``: the pairs this request deletes, ``retain = D_r(t)`` and ``earlier`` the
      pairs of requests ``1 .. t-1`` (what a method unlearning step ``t`` is given);
    * ``cumulative``: every pair deleted so far as ``forget`` and the same ``retain`` (what
      the reference of step ``t`` is retrained on and what step ``t`` is measured on).

    Step 1 is ``make_task(dataset, regime, selection, ratio, seed)`` itself; step ``t``
    draws from ``D_r(t-1)`` with seed ``seed + STEP_SEED_OFFSET (t - 1)`` and the ratio
    rescaled to ``ratio * N(D) / N(D_r(t-1))`` (``N``: units with a training pair), so
    every request deletes ``round(ratio * N(D))`` units."""
    if steps < 1:
        raise UserError(f"steps {steps}: must be >= 1")
    out = []
    units = _units(dataset.train, regime)
    deleted = np.zeros((0, 2), dtype=np.int64)
    remaining = dataset.train
    for t in range(1, steps + 1):
        view = dataclasses.replace(dataset, train=remaining)
        share = ratio if t == 1 else ratio * units / _units(remaining, regime)
        if not 0.0 < share < 1.0:
            raise UserError(f"regime '{regime}' ratio {ratio} x {steps} steps: step {t} would delete everything left")
        drawn = make_task(view, regime, selection, share, seed + STEP_SEED_OFFSET * (t - 1))
        request = dataclasses.replace(drawn, ratio=ratio, seed=seed, earlier=deleted, step=t)
        deleted = np.ascontiguousarray(np.concatenate([deleted, drawn.forget]))
        cumulative = _task(dataset, regime, selection, ratio, seed, _member(dataset.train, deleted))
        out.append((request, dataclasses.replace(cumulative, step=t)))
        remaining = drawn.retain
    return out


def _units(train: np.ndarray, regime: str) -> int:
    """How many units of ``regime`` have a training pair."""
    if regime == "interaction":
        return len(train)
    return len(np.unique(train[:, 0 if regime == "user" else 1]))


def _member(train: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Per row of ``train``, whether it is one of ``pairs`` (``[n]`` bool)."""
    width = int(max(train[:, 1].max(), pairs[:, 1].max() if len(pairs) else 0)) + 1
    return np.isin(train[:, 0] * width + train[:, 1], pairs[:, 0] * width + pairs[:, 1])


def task_from_request(dataset: Dataset, path: str | Path) -> ForgetTask:
    """The forget task of an explicit request: a CSV with columns ``userID,itemID``.

    Unknown ids and pairs that are not training interactions are errors naming the row.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except Exception as exc:
        raise UserError(f"{path}: cannot be read as CSV ({exc})") from None
    if list(frame.columns) != ["userID", "itemID"]:
        raise UserError(f"{path}: expected the columns userID,itemID, got {','.join(map(str, frame.columns))}")
    if frame.empty:
        raise UserError(f"{path}: the request is empty")
    for col, limit in (("userID", dataset.n_users), ("itemID", dataset.n_items)):
        if not pd.api.types.is_integer_dtype(frame[col]):
            raise UserError(f"{path}: column '{col}' must hold integers")
        bad = np.flatnonzero((frame[col] < 0) | (frame[col] >= limit))
        if len(bad):
            raise UserError(f"{path}: row {bad[0] + 2}: unknown {col} {frame[col].iloc[bad[0]]}")
    train_keys = dataset.train[:, 0] * dataset.n_items + dataset.train[:, 1]
    request = frame.to_numpy(np.int64)
    keys = request[:, 0] * dataset.n_items + request[:, 1]
    missing = np.flatnonzero(~np.isin(keys, train_keys))
    if len(missing):
        u, i = request[missing[0]]
        raise UserError(f"{path}: row {missing[0] + 2}: ({u}, {i}) is not a training interaction")
    return _task(dataset, "request", "request", len(np.unique(keys)) / len(train_keys), 0, np.isin(train_keys, keys))


def _task(dataset, regime, selection, ratio, seed, mask) -> ForgetTask:
    forget = np.ascontiguousarray(dataset.train[mask])
    return ForgetTask(
        regime=regime, selection=selection, ratio=ratio, seed=seed,
        forget=forget, retain=np.ascontiguousarray(dataset.train[~mask]),
        users=np.unique(forget[:, 0]), items=np.unique(forget[:, 1]),
        n_users=dataset.n_users, n_items=dataset.n_items, valid=dataset.valid,
    )
