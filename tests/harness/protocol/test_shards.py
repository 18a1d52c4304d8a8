import json

import numpy as np
import pytest
import torch

from harness.data.tiny import tiny_dataset
from harness.protocol.conformance import TRAINING
from harness.protocol.shards import FOLDER, ShardTrainer, makespan, read_record, write_record
from methods import ShardJob


def test_makespan_by_hand():
    # longest first, each to the first free worker: 3 | 3, then 2 -> 5 | 3, 2 -> 5 | 5, 2 -> 7 | 5
    assert makespan([2.0, 3.0, 2.0, 3.0, 2.0], 2) == 7.0  # (the optimum, 3+3 | 2+2+2 = 6, is not LPT's)
    assert makespan([2.0, 3.0, 2.0], 1) == 7.0 and makespan([2.0, 3.0, 2.0], 8) == 3.0


def test_a_record_says_how_its_wall_time_was_obtained(tmp_path):
    measured = write_record(tmp_path, "a", [2.0, 3.0], [False, False], 2, 3.4)
    assert measured == {"wall_seconds": 3.4, "how": "measured", "workers": 2, "train_seconds": [2.0, 3.0]}
    partial = write_record(tmp_path, "b", [2.0, 3.0, 2.0], [True, False, False], 2, 0.5)  # 0.5: only part was trained
    assert partial["how"] == "schedule" and partial["wall_seconds"] == 4.0
    assert write_record(tmp_path, "a", [9.0], [False], 1, 9.0)["wall_seconds"] == 9.0  # a new measurement replaces it
    assert read_record(tmp_path, "a")["workers"] == 1
    with pytest.raises(ValueError):
        write_record(tmp_path, "c", [1.0], [True], 1, 0.0)
    assert read_record(tmp_path, "b") == json.loads((tmp_path / FOLDER / "b.json").read_text())
    assert read_record(tmp_path, "nothing") is None and not list((tmp_path / FOLDER).glob("*.tmp"))


def test_a_cached_set_reports_the_wall_time_measured_when_it_was_trained(tmp_path):
    data = tiny_dataset()
    trainer = ShardTrainer(data, "lightgcn", {}, TRAINING, torch.device("cpu"), tmp_path)
    jobs = [ShardJob(data.train[: len(data.train) // 2], data.valid, 1), ShardJob(data.train[len(data.train) // 2:],
                                                                                data.valid, 2)]
    first = trainer(jobs)
    again = trainer(jobs)  # every shard from the cache now
    assert again.wall_seconds == first.wall_seconds > 0 and again.workers == first.workers == 1
    assert again.train_seconds == first.train_seconds
    for a, b in zip(first.models, again.models):
        assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    assert read_record(tmp_path, trainer.key(jobs))["how"] == "measured"
    assert trainer.key(jobs) != trainer.key(jobs[::-1]) and np.isfinite(first.wall_seconds)
