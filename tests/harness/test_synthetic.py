"""The synthetic generator: seeded bytes, ml100k's shape, power-law activity and popularity,
planted clusters in both the interactions and the features, a per-user split, a folder
that is complete or absent, and one-line errors."""

import numpy as np
import pytest

from harness.cli import main
from harness.core.errors import UserError
from harness.data.datasets import load_dataset
from harness.synthetic import (CLUSTERS, MIN_DEGREE, MODALITIES, interactions, split_labels, synthesize,
                               write_features)


def files(folder) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_same_scale_and_seed_give_the_same_bytes_and_a_labelled_dataset(tmp_path):
    a, b, c = (synthesize(0.2, seed, tmp_path / name) for name, seed in (("a", 4), ("b", 4), ("c", 5)))
    assert files(a) == files(b) != files(c)
    dataset = load_dataset(a)  # the harness's own validation accepts it
    assert dataset.name == "synthetic-0.2x-seed4"
    assert "SYNTHETIC" in (a / "SYNTHETIC.md").read_text()
    assert dataset.n_users == round(943 * 0.2) and dataset.n_items <= round(1682 * 0.2)
    assert sorted(dataset.features) == sorted(MODALITIES)
    assert {m: f.shape[1] for m, f in dataset.features.items()} == {m: d for m, (d, _) in MODALITIES.items()}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_ml100k_shape_power_law_users_and_items():
    pairs, _ = interactions(943, 1682, np.random.default_rng(0))
    degree = np.bincount(pairs[:, 0])
    popularity = np.sort(np.bincount(pairs[:, 1]))[::-1]
    assert degree.min() >= MIN_DEGREE and 90 < degree.mean() < 120  # ml100k: at least 20, mean 106
    assert degree.max() > 5 * np.median(degree)  # a heavy tail of active users
    assert popularity[: len(popularity) // 10].sum() > 0.3 * len(pairs)  # the top 10% of items: over 30%
    assert len(np.unique(pairs[:, 0] * 10**6 + pairs[:, 1])) == len(pairs)  # no repeated pair
    assert np.array_equal(np.unique(pairs[:, 1]), np.arange(pairs[:, 1].max() + 1))  # contiguous item ids


def test_users_draw_mostly_from_their_planted_cluster():
    rng = np.random.default_rng(1)
    pairs, item_cluster = interactions(400, 2000, rng)
    clusters = item_cluster[pairs[:, 1]]
    share = np.array([np.bincount(clusters[pairs[:, 0] == u], minlength=CLUSTERS).max() / (pairs[:, 0] == u).sum()
                      for u in range(400)])
    assert np.median(share) > 0.5  # 70% of draws in the user's cluster; uniform would give about 1/20


def test_features_carry_the_clusters(tmp_path):
    rng = np.random.default_rng(2)
    item_cluster = rng.integers(CLUSTERS, size=600)
    for name, (dim, sigma) in MODALITIES.items():
        write_features(tmp_path / f"{name}.npy", item_cluster, dim, sigma, rng)
        f = np.load(tmp_path / f"{name}.npy")
        assert f.dtype == np.float32 and f.shape == (600, dim)
        means = np.stack([f[item_cluster == k].mean(0) for k in range(CLUSTERS)])
        nearest = ((f[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
        assert (nearest == item_cluster).mean() > 0.95


def test_split_is_per_user_eighty_ten_ten():
    users = np.repeat(np.arange(50), np.arange(20, 70))
    labels = split_labels(users, np.random.default_rng(3))
    for u in range(50):
        counts = np.bincount(labels[users == u], minlength=3)
        degree = 20 + u
        assert counts[0] == max(round(0.8 * degree), 1) and counts[1] == round(0.1 * degree)
    assert not np.array_equal(labels[:20], np.sort(labels[:20]))  # shuffled within the user, not by position


def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr("harness.synthetic.write_features", broken)
    with pytest.raises(OSError):
        synthesize(0.2, 0, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, message", [
    (["--scale", "0"], "--scale 0.0: must be a positive number"),
    (["--scale", "0.001"], "--scale 0.001: too small"),
    (["--scale", "1", "--seed", "-1"], "--seed -1: must be >= 0"),
])
def test_bad_arguments_are_one_line(tmp_path, capsys, argv, message):
    assert main(["synthesize", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tru: error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_an_existing_folder_is_refused_and_kept(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    assert main(["synthesize", "--scale", "0.2", "--out", str(tmp_path / "out")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert files(tmp_path / "out") == {"mine.txt": b"keep"}
    with pytest.raises(UserError, match="no such folder"):
        synthesize(0.2, 0, tmp_path / "missing" / "out")
