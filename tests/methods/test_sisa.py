import numpy as np
import pytest
import torch

from harness.data.regimes import make_task
from harness.data.tiny import tiny_dataset
from harness.protocol.conformance import TRAINING
from harness.protocol.models import train_backbone
from harness.protocol.shards import ShardTrainer
from methods import METHODS, Budget
from methods.sharding import canonical


@pytest.fixture(scope="module")
def data():
    return tiny_dataset()


def _budget(data, backbone="lightgcn"):
    trainer = ShardTrainer(data, backbone, {}, TRAINING, torch.device("cpu"), None)
    return trainer, Budget(seed=3, train_shards=trainer)


def _from_scratch(data, task, shard_of_pair, k, seed):
    """Shard ``k``'s model trained from scratch on ``D_r``, written out independently of
    methods.sharding: its pairs sorted by (user, item), early-stopped on the remaining
    validation pairs of the users it holds pairs of, from seed ``seed + 10000 (k + 1)``."""
    pairs = task.retain[shard_of_pair(task.retain) == k]
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    valid = task.valid[~np.isin(task.valid[:, 0], task.removed_users)]
    valid = valid[np.isin(valid[:, 0], pairs[:, 0])]
    return train_backbone(data, "lightgcn", seed + 10_000 * (k + 1), {}, TRAINING, train_pairs=np.ascontiguousarray(pairs),
                          valid_pairs=np.ascontiguousarray(valid), cache_dir=None, progress=False).model


@pytest.mark.parametrize("unit, regime, ratio", [("user", "interaction", 0.01), ("interaction", "interaction", 0.01),
                                                  ("user", "user", 0.05)])
def test_no_shard_that_trained_on_a_deleted_pair_is_kept(data, unit, regime, ratio):
    task = make_task(data, regime, "random", ratio, seed=0)  # 2 pairs / 2 users: most shards untouched
    trainer, budget = _budget(data)
    sisa = METHODS.get("sisa")(n_shards=5, unit=unit)
    start = sisa.start(None, task, budget)
    part = start.partition
    original = [{k: v.clone() for k, v in m.state_dict().items()} for m in start.shard_models]
    model = sisa.unlearn(start, task, budget)
    affected = part.affected(task.forget)
    assert 0 < len(affected) < 5
    forget = set(map(tuple, task.forget.tolist()))
    for k, shard in enumerate(model.shard_models):
        # its parameters are those of the shard's model retrained without the deleted pairs, same seed
        retrained = _from_scratch(data, task, part.shards, k, 3)
        for name, value in retrained.state_dict().items():
            assert torch.equal(shard.state_dict()[name], value), (k, name)
        kept = all(torch.equal(original[k][n], v) for n, v in shard.state_dict().items())
        assert kept == (k not in affected)  # untouched shards are kept as they were, touched ones are not
    assert not forget & set(map(tuple, model.partition.split(task.retain)[0].tolist()))
    if unit == "interaction" or regime == "user":  # (a user shard of a user who stays says nothing of the pair)
        with pytest.raises(ValueError, match="not a pair the partition was made on"):
            model.partition.shards(task.forget)  # the unlearned model keeps no trace of the deleted pairs
    assert sisa.decisions["retrained"] == f"{len(affected)} of 5"
    assert sisa.costs["unlearn_seconds"] > 0 and sisa.costs["train_seconds_total"] > 0


@pytest.mark.parametrize("unit", ["user", "item", "interaction"])
@pytest.mark.parametrize("regime", ["interaction", "user", "item"])
def test_an_untouched_shard_gets_exactly_the_job_it_had(data, unit, regime):
    from methods.sharding import random_partition, shard_jobs, training_pairs

    task = make_task(data, regime, "random", 0.05, seed=1)
    part = random_partition(training_pairs(task), data.n_users, data.n_items, 4, unit, seed=0)
    before = shard_jobs(part, training_pairs(task), task.valid, 0)
    after = shard_jobs(part, task.retain, task.retained_valid(), 0)
    affected = part.affected(task.forget)
    for k in set(range(4)) - set(affected):  # same pairs, same validation pairs, same seed: the same model
        assert np.array_equal(before[k].train, after[k].train) and np.array_equal(before[k].valid, after[k].valid)
        assert before[k].seed == after[k].seed
        assert not np.isin(before[k].valid[:, 0], task.removed_users).any()  # no deleted user ever guided it


def test_receraser_retrains_the_touched_shards_and_a_fresh_aggregator(data):
    task = make_task(data, "user", "random", 0.05, seed=0)
    trainer, budget = _budget(data)
    fitted = []
    budget = budget.model_copy(update={"fit": lambda model, pairs, valid: fitted.append((pairs, valid)) or 0.0})
    original = train_backbone(data, "lightgcn", 3, {}, TRAINING, cache_dir=None, progress=False).model
    method = METHODS.get("receraser")(n_shards=4, iterations=3)
    start = method.start(original, task, budget)
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in start.ensemble.shard_models]
    affected = start.ensemble.partition.affected(task.forget)
    model = method.unlearn(start, task, budget)
    for k, shard in enumerate(model.ensemble.shard_models):
        kept = all(torch.equal(before[k][n], v) for n, v in shard.state_dict().items())
        assert kept == (k not in affected)
    assert model is not start and method.decisions["retrained"] == f"{len(affected)} of 4"
    (d_pairs, d_valid), (r_pairs, r_valid) = fitted  # the aggregator: on D first, then on D_r without deleted users
    assert np.array_equal(d_pairs, canonical(np.concatenate([task.retain, task.forget])))
    assert np.array_equal(d_valid, task.valid)
    assert np.array_equal(r_pairs, canonical(task.retain)) and np.array_equal(r_valid, task.retained_valid())
    assert not np.isin(r_valid[:, 0], task.users).any()


def test_the_original_depends_on_d_only_not_on_what_is_forgotten(data):
    _, budget = _budget(data)
    plans = [METHODS.get("sisa")().plan(None, make_task(data, regime, "random", 0.1, seed=s), budget)
             for regime, s in (("interaction", 0), ("user", 4))]
    for a, b in zip(plans[0][0], plans[1][0]):
        assert np.array_equal(a.train, b.train) and np.array_equal(a.valid, b.valid) and a.seed == b.seed
