import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.data.datasets import load_dataset, shipped_datasets
from harness.core.errors import UserError


def test_tiny_dataset_loads(tiny):
    assert tiny.n_users == 24 and tiny.n_items == 30
    assert tiny.modalities == ["image", "text"]
    assert len(tiny.valid) == 24 and len(tiny.test) == 24
    assert tiny.features["image"].shape == (30, 12)


def test_shipped_datasets_and_counts():
    assert set(shipped_datasets()) >= {"ml100k", "tiktok", "baby", "lfm2k"}
    ml = load_dataset("ml100k")
    assert (ml.n_users, ml.n_items) == (943, 1682)
    assert sorted(ml.modalities) == ["image", "text"]
    assert len(ml.train) + len(ml.valid) + len(ml.test) == 100_000


def test_modality_names_are_data(make_mmrec):
    ds = load_dataset(make_mmrec("x", modalities={"audio": 5}))
    assert ds.modalities == ["audio"]
    ds = load_dataset(make_mmrec("y", modalities={}))
    assert ds.modalities == []


def test_fingerprint_depends_on_content(make_mmrec):
    a = load_dataset(make_mmrec("a", seed=0))
    b = load_dataset(make_mmrec("b", seed=0))
    c = load_dataset(make_mmrec("c", seed=1))
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_generated_features_are_marked():
    baby = load_dataset("baby")
    assert baby.modalities == []
    gen = load_dataset("baby", generated_features={"image": 16})
    assert gen.features["image"].shape == (baby.n_items, 16)
    assert gen.generated == {"image"}
    assert gen.modality_labels() == ["image(generated)"]
    assert gen.fingerprint != baby.fingerprint


def _inter(folder):
    path = next(folder.glob("*.inter"))
    return path, pd.read_csv(path, sep="\t")


def _break(folder, how):
    path, frame = _inter(folder)
    if how == "missing column":
        frame = frame.drop(columns=["x_label"])
    elif how == "extra column":
        frame["mood"] = 1
    elif how == "gap in ids":
        frame.loc[frame.userID == 3, "userID"] = 100
    elif how == "empty split":
        frame.loc[frame.x_label == 1, "x_label"] = 0
    elif how == "orphan test user":
        frame = frame[~((frame.userID == 5) & (frame.x_label == 0))]
    elif how == "bad label":
        frame.loc[0, "x_label"] = 7
    frame.to_csv(path, sep="\t", index=False)


@pytest.mark.parametrize(
    "how, message",
    [
        ("missing column", "missing column 'x_label'"),
        ("extra column", "unexpected column 'mood'"),
        ("gap in ids", "'userID' ids are not contiguous from 0"),
        ("empty split", "validation split (x_label 1) is empty"),
        ("orphan test user", "user 5 has test items but no training items"),
        ("bad label", "x_label value 7"),
    ],
)
def test_bad_interactions(tiny_folder, how, message):
    _break(tiny_folder, how)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        load_dataset(tiny_folder)
    assert str(tiny_folder) in str(err.value) and "\n" not in str(err.value)


def test_feature_row_count(tiny_folder):
    np.save(tiny_folder / "image_feat.npy", np.zeros((29, 4), np.float32))
    with pytest.raises(UserError, match=r"image_feat.npy: 29 rows but the interactions have 30 items"):
        load_dataset(tiny_folder)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_feature_not_finite(tiny_folder, bad):
    feat = np.ones((30, 4), np.float32)
    feat[7, 2] = bad
    np.save(tiny_folder / "text_feat.npy", feat)
    with pytest.raises(UserError, match=r"text_feat.npy: NaN or inf values \(first in row 7\)"):
        load_dataset(tiny_folder)


def test_unknown_dataset():
    with pytest.raises(UserError, match="not a shipped dataset"):
        load_dataset("no-such-set")


def test_cli_bad_dataset_exits_2_with_one_line(tiny_folder, capsys):
    _break(tiny_folder, "extra column")
    code = main(["train", "--dataset", str(tiny_folder), "--backbone", "lightgcn", "--no-cache"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("tru: error: ") and err.count("\n") == 1
    assert "unexpected column 'mood'" in err and "Traceback" not in err


def test_cli_datasets_lists_everything(capsys):
    assert main(["datasets", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rows = {r["dataset"]: r for r in map(__import__("json").loads, lines)}
    assert rows["ml100k"]["users"] == 943 and rows["ml100k"]["interactions"] == 100_000
    assert rows["baby"]["modalities"] == []
    assert set(rows["tiktok"]["modalities"]) == {"image", "audio"}
