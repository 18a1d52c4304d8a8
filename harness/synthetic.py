"""Synthetic MMRec folders at any scale, for the cost curve (``bench/scale.py``).

**The data are synthetic**: no real user is in them. The folder says so in a
``SYNTHETIC.md`` file, and the dataset's name (the ``.inter`` file's stem, which records
and reports show) starts with ``synthetic-``.

The shape is ml100k's (MovieLens 100K: 943 users, 1,682 items, 100,000 interactions, every
user with at least 20; Harper & Konstan, ACM TiiS 2015), multiplied by ``scale``:

* **Users** ``U = round(943 s)``, each in one of ``K = 20`` taste clusters (uniform).
  Their activity is power-law: a target degree ``d_u = 20 + 129 X_u``, ``X_u ~ Lomax(2.5)``
  (mean 0.667, so the mean degree is about 106, ml100k's), at most ``I / 2``.
* **Items** ``I = round(1682 s)``, each in one cluster (uniform), with Zipf popularity
  ``w_i = r_i^-0.8`` for a random rank ``r_i``.
* **Interactions.** Each of a user's ``d_u`` draws is, with probability 0.7, an item of the
  user's own cluster drawn by popularity within it, otherwise an item of all items by
  popularity. Repeated pairs are dropped and the shortfall redrawn the same way (six
  rounds, then two from all items only), so the realised degree is the target but for
  the heaviest users of the smallest scales. A user's own cluster holds about half of
  their items (popular items repeat, so not all of the 70%; 1/20 would be no structure).
  Items no draw reached are dropped and the ids renumbered from 0 (the MMRec format needs
  contiguous ids).
* **Split**, per user: a random 80% of the items (at least one) is training, 10% validation,
  the rest test (``x_label`` 0 / 1 / 2).
* **Two modalities with planted structure:** ``image`` (1,280 dims, as ml100k's) and
  ``text`` (384 dims): item ``i`` of cluster ``k`` has ``f_i = c_k + sigma eps_i``,
  ``c_k ~ N(0, I)`` per modality and ``eps_i ~ N(0, I)``, ``sigma`` 1.0 for image and 0.7
  for text (two views of the same clusters at different signal-to-noise ratios),
  float32, written in blocks of rows.

Everything is vectorised (no loop over users or pairs) and seeded by ``seed``: the same
``(scale, seed)`` gives the same bytes. The folder is built under a hidden temporary name
beside ``out`` and renamed into place, so ``out`` is either absent or complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from harness.core.errors import UserError
from harness.data.datasets import FEATURE_SUFFIX
from harness.storage.locations import default_mode

BASE_USERS, BASE_ITEMS = 943, 1682  # ml100k
MIN_DEGREE, DEGREE_SCALE, DEGREE_TAIL = 20, 129.0, 2.5  # d = 20 + 129 Lomax(2.5): mean about 106
CLUSTERS = 20
IN_CLUSTER = 0.7  # share of a user's draws from the user's own cluster
ZIPF = 0.8
SHARES = (0.8, 0.1)  # train, validation; the rest is test
MODALITIES = {"image": (1280, 1.0), "text": (384, 0.7)}  # name: (dimension, noise sigma)
TOP_UP_ROUNDS = 8
FEATURE_BLOCK = 65536  # rows of a feature matrix generated at once


def synthesize(scale: float, seed: int, out: str | Path) -> Path:
    """Write a synthetic MMRec folder of ``scale`` times ml100k's users and items to ``out``
    (which must not exist); returns its path. Bad arguments are a :class:`UserError`."""
    out = Path(out)
    if not scale > 0 or not np.isfinite(scale):
        raise UserError(f"--scale {scale}: must be a positive number")
    if seed < 0:
        raise UserError(f"--seed {seed}: must be >= 0")
    if round(BASE_USERS * scale) < 2 or round(BASE_ITEMS * scale) < 2 * MIN_DEGREE + 2:
        raise UserError(f"--scale {scale}: too small (needs at least {2 * MIN_DEGREE + 2} items)")
    if out.exists():
        raise UserError(f"{out}: already exists (choose a new folder)")
    if not out.parent.is_dir():
        raise UserError(f"{out.parent}: no such folder")
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise UserError(f"{out.parent}: cannot be written ({exc.strerror})") from None
    try:
        name = f"synthetic-{scale:g}x-seed{seed}"
        write_folder(staging, name, scale, seed)
        staging.chmod(default_mode(0o777))  # mkdtemp's folder is private (0700); the dataset is not
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def write_folder(folder: Path, name: str, scale: float, seed: int) -> None:
    """The files of one synthetic dataset into the existing ``folder``."""
    rng = np.random.default_rng(seed)
    pairs, item_cluster = interactions(round(BASE_USERS * scale), round(BASE_ITEMS * scale), rng)
    labels = split_labels(pairs[:, 0], rng)
    frame = pd.DataFrame({"userID": pairs[:, 0], "itemID": pairs[:, 1], "x_label": labels})
    frame.to_csv(folder / f"{name}.inter", sep="\t", index=False)
    for modality, (dim, sigma) in MODALITIES.items():
        write_features(folder / f"{modality}{FEATURE_SUFFIX}", item_cluster, dim, sigma, rng)
    (folder / "SYNTHETIC.md").write_text(
        f"# {name}: SYNTHETIC data\n\nGenerated by `tru synthesize --scale {scale:g} --seed {seed}` "
        f"(harness/synthetic.py): {pairs[:, 0].max() + 1} users, {len(item_cluster)} items, {len(pairs)} "
        "interactions drawn from a planted model (power-law users and items, 20 taste clusters, two feature "
        "modalities built from the clusters). No real user or item is in it; use it for cost measurements, "
        "not for claims about recommendation quality.\n")


def degrees(n_users: int, n_items: int, rng: np.random.Generator) -> np.ndarray:
    """Target degrees ``[U]``: ``20 + 129 Lomax(2.5)``, at most ``I / 2``."""
    raw = MIN_DEGREE + DEGREE_SCALE * rng.pareto(DEGREE_TAIL, n_users)
    return np.minimum(raw.astype(np.int64), n_items // 2)


def interactions(n_users: int, n_items: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(pairs [E, 2] sorted by user then item, item_cluster [I'])`` after dropping unreached
    items and renumbering them (see the module docstring)."""
    user_cluster = rng.integers(CLUSTERS, size=n_users)
    item_cluster = rng.integers(CLUSTERS, size=n_items)
    weight = rng.permutation(np.arange(1, n_items + 1, dtype=np.float64)) ** -ZIPF
    # items ordered by cluster: each cluster a contiguous segment of the cumulative weights
    by_cluster = np.argsort(item_cluster, kind="stable")
    cum = np.cumsum(weight[by_cluster])
    bounds = np.searchsorted(item_cluster[by_cluster], np.arange(CLUSTERS + 1))
    low = np.concatenate([[0.0], cum])[bounds[:-1]]
    high = np.concatenate([[0.0], cum])[bounds[1:]]

    def by_popularity(clusters: np.ndarray | None, n: int) -> np.ndarray:
        """``n`` items by popularity, within ``clusters`` (one per draw) or over all items."""
        if clusters is None:
            u = rng.random(n) * cum[-1]
        else:
            u = low[clusters] + rng.random(n) * (high[clusters] - low[clusters])
        return by_cluster[np.minimum(np.searchsorted(cum, u, side="right"), n_items - 1)]

    def draws(users: np.ndarray, in_cluster: float) -> np.ndarray:
        """One item per entry of ``users``: from the user's cluster with probability ``in_cluster``."""
        own = rng.random(len(users)) < in_cluster
        items = np.empty(len(users), dtype=np.int64)
        items[own] = by_popularity(user_cluster[users[own]], int(own.sum()))
        items[~own] = by_popularity(None, int((~own).sum()))
        return users * n_items + items

    want = degrees(n_users, n_items, rng)
    keys = np.unique(draws(np.repeat(np.arange(n_users), want), IN_CLUSTER))
    for round_ in range(TOP_UP_ROUNDS):  # redraw the repeats; the last rounds from all items only
        short = want - np.bincount(keys // n_items, minlength=n_users)
        if not short.any():
            break
        extra = draws(np.repeat(np.arange(n_users), short), IN_CLUSTER if round_ < TOP_UP_ROUNDS - 2 else 0.0)
        keys = np.unique(np.concatenate([keys, extra]))
    users, items = keys // n_items, keys % n_items
    reached = np.zeros(n_items, dtype=bool)
    reached[items] = True
    renumber = np.cumsum(reached) - 1
    return np.stack([users, renumber[items]], 1), item_cluster[reached]


def split_labels(users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x_label [E]`` for pairs sorted by user: per user a random 80% train (at least one),
    10% validation, the rest test."""
    order = np.lexsort((rng.random(len(users)), users))  # by user, random within each user
    counts = np.bincount(users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(users)) - np.repeat(starts, counts)  # position within the user's shuffled items
    degree = np.repeat(counts, counts)
    n_train = np.maximum(np.round(SHARES[0] * degree), 1)
    n_valid = np.round(SHARES[1] * degree)
    labels = np.empty(len(users), dtype=np.int64)
    labels[order] = np.where(rank < n_train, 0, np.where(rank < n_train + n_valid, 1, 2))
    return labels


def write_features(path: Path, item_cluster: np.ndarray, dim: int, sigma: float, rng: np.random.Generator) -> None:
    """``f_i = c_k(i) + sigma eps_i`` ``[I, dim]`` float32, written ``FEATURE_BLOCK`` rows at a time."""
    centroids = rng.standard_normal((CLUSTERS, dim), dtype=np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(item_cluster), dim))
    for begin in range(0, len(item_cluster), FEATURE_BLOCK):
        rows = item_cluster[begin : begin + FEATURE_BLOCK]
        out[begin : begin + len(rows)] = centroids[rows] + sigma * rng.standard_normal((len(rows), dim), dtype=np.float32)
    out.flush()
    del out
