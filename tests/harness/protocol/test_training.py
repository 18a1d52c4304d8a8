import json

import pytest
import torch

from harness.cli import main
from harness.protocol.models import train_backbone
from harness.protocol.evaluation import evaluate_model
from harness.protocol.training import TrainConfig, train
from backbones.blocks.graph import UserItemGraph
from harness.protocol.models import build_backbone


def test_best_epoch_is_the_validation_argmax_and_its_state_is_kept(tiny):
    model = build_backbone("lightgcn", tiny, 0)
    config = TrainConfig(lr=0.05, batch_size=16, max_epochs=12, patience=3)
    result = train(model, torch.from_numpy(tiny.train), torch.from_numpy(tiny.valid), config, 0, progress=False)
    scores = [(r["valid"], -r["epoch"]) for r in result.history]
    assert result.best_epoch == -max(scores)[1]
    assert result.epochs_run <= config.max_epochs
    assert result.epochs_run - result.best_epoch == config.patience or result.epochs_run == config.max_epochs
    graph = UserItemGraph(torch.from_numpy(tiny.train), tiny.n_users, tiny.n_items)
    assert evaluate_model(model, graph, torch.from_numpy(tiny.valid)) == result.valid


def test_train_config_rejects_bad_values():
    from backbones.lightgcn import LightGCN
    from harness.core.errors import UserError

    with pytest.raises(UserError, match="training setting 'lr'"):
        TrainConfig.for_backbone(LightGCN, lr=-1)
    with pytest.raises(UserError, match="training setting 'epochs': Extra inputs"):
        TrainConfig.for_backbone(LightGCN, epochs=3)


def test_cache_returns_the_same_model_without_training(tiny, tmp_path):
    first = train_backbone(tiny, "lightgcn", 0, train_overrides={"max_epochs": 2}, cache_dir=tmp_path, progress=False)
    second = train_backbone(tiny, "lightgcn", 0, train_overrides={"max_epochs": 2}, cache_dir=tmp_path, progress=False)
    assert not first.cached and second.cached
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key])
    assert second.meta["best_epoch"] == first.meta["best_epoch"]
    other = train_backbone(
        tiny, "lightgcn", 0, train_overrides={"max_epochs": 2}, train_pairs=tiny.train[:-5],
        cache_dir=tmp_path, progress=False,
    )
    assert not other.cached  # different training pairs -> different key
    assert len(list(tmp_path.glob("*.pt"))) == 2 and not list(tmp_path.glob("*.tmp"))


def test_cli_train_prints_one_json_line(tiny_folder, capsys, tmp_path):
    code = main([
        "train", "--dataset", str(tiny_folder), "--backbone", "mgcn", "--epochs", "2",
        "--json", "--quiet", "--cache-dir", str(tmp_path),
    ])
    out = capsys.readouterr().out
    assert code == 0 and out.count("\n") == 1
    record = json.loads(out)
    assert record["backbone"] == "mgcn" and record["seed"] == 0 and record["epochs_run"] == 2
    for split in ("valid", "test"):
        for metric in ("recall", "ndcg", "precision", "hit"):
            assert 0.0 <= record[f"{split}_{metric}@20"] <= 1.0


def test_cli_rejects_bad_training_settings(tiny_folder, capsys):
    code = main(["train", "--dataset", str(tiny_folder), "--backbone", "lightgcn", "--train", '{"lr": -1}', "--no-cache"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("tru: error: training setting 'lr': Input should be greater than 0")
    code = main(["train", "--dataset", str(tiny_folder), "--backbone", "nope", "--no-cache"])
    assert code == 2 and "unknown backbone 'nope'" in capsys.readouterr().err
