import numpy as np
import pytest
import torch

from harness.data.regimes import make_task
from harness.data.tiny import tiny_dataset
from harness.protocol.conformance import TRAINING
from harness.protocol.models import train_backbone
from harness.protocol.shards import ShardTrainer
from methods import METHODS, Budget
from methods.sharding import SHARD_SEED_OFFSET, canonical, shard_validation


@pytest.fixture(scope="module")
def data():
    return tiny_dataset()


def _budget(data, backbone="lightgcn"):
    trainer = ShardTrainer(data, backbone, {}, TRAINING, torch.device("cpu"), None)
    return trainer, Budget(seed=3, train_shards=trainer)


@pytest.mark.parametrize("unit", ["user", "interaction"])
def test_no_shard_that_trained_on_a_deleted_pair_is_kept(data, unit):
    task = make_task(data, "interaction", "random", 0.01, seed=0)  # 2 pairs: most shards untouched
    trainer, budget = _budget(data)
    sisa = METHODS.get("sisa")(n_shards=5, unit=unit)
    start = sisa.start(None, task, budget)
    original = [{k: v.clone() for k, v in m.state_dict().items()} for m in start.shard_models]
    model = sisa.unlearn(start, task, budget)
    part = model.partition
    affected = part.affected(task.forget)
    assert 0 < len(affected) < 5
    forget = set(map(tuple, task.forget.tolist()))
    for k, (shard, pairs) in enumerate(zip(model.shard_models, part.split(canonical(task.retain)))):
        assert not forget & set(map(tuple, pairs.tolist()))
        # its parameters are those of the shard's model retrained without the deleted pairs, same seed
        retrained = train_backbone(data, "lightgcn", 3 + SHARD_SEED_OFFSET * (k + 1), {}, TRAINING, train_pairs=pairs,
                                   valid_pairs=shard_validation(part, pairs, task.retained_valid()), cache_dir=None,
                                   progress=False).model
        for name, value in retrained.state_dict().items():
            assert torch.equal(shard.state_dict()[name], value), (k, name)
        kept = all(torch.equal(original[k][n], v) for n, v in shard.state_dict().items())
        assert kept == (k not in affected)  # untouched shards are kept as they were, touched ones are not
    assert sisa.decisions["retrained"] == f"{len(affected)} of 5"
    assert sisa.costs["unlearn_seconds"] > 0 and sisa.costs["train_seconds_total"] > 0


def test_receraser_retrains_the_touched_shards_and_a_fresh_aggregator(data):
    task = make_task(data, "interaction", "random", 0.01, seed=0)
    trainer, budget = _budget(data)
    budget = budget.model_copy(update={"fit": lambda model, pairs, valid: 0.0})  # the aggregator's training: elsewhere
    original = train_backbone(data, "lightgcn", 3, {}, TRAINING, cache_dir=None, progress=False).model
    method = METHODS.get("receraser")(n_shards=4, iterations=3)
    start = method.start(original, task, budget)
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in start.ensemble.shard_models]
    model = method.unlearn(start, task, budget)
    affected = model.ensemble.partition.affected(task.forget)
    for k, shard in enumerate(model.ensemble.shard_models):
        kept = all(torch.equal(before[k][n], v) for n, v in shard.state_dict().items())
        assert kept == (k not in affected)
    assert model is not start and method.decisions["retrained"] == f"{len(affected)} of 4"


def test_the_original_depends_on_d_only_not_on_what_is_forgotten(data):
    _, budget = _budget(data)
    plans = [METHODS.get("sisa")().plan(None, make_task(data, regime, "random", 0.1, seed=s), budget)
             for regime, s in (("interaction", 0), ("user", 4))]
    for a, b in zip(plans[0][0], plans[1][0]):
        assert np.array_equal(a.train, b.train) and np.array_equal(a.valid, b.valid) and a.seed == b.seed
