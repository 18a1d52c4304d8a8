"""Conformance suite for unlearning methods, shipped for plugin authors.

    from methods.testing import check_method
    check_method(MyMethod)            # raises AssertionError naming the broken rule

Rules: hyperparameters are declared with a type, a default inside their range, and
a name; unknown hyperparameters are rejected; ``unlearn`` returns a backbone with the
original's parameter names and shapes and finite scores; it leaves the task untouched;
the same seed gives identical parameters; ``summary()`` is JSON-serialisable.
Runs in seconds on a small generated dataset (no files).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import torch

from harness.data import Dataset
from harness.errors import UserError
from harness.graph import UserItemGraph
from harness.pipeline import build_backbone
from harness.regimes import make_task
from harness.train import TrainConfig, train
from methods.base import Budget, UnlearningMethod


def tiny_dataset(n_users: int = 30, n_items: int = 40, per_user: int = 8, seed: int = 0) -> Dataset:
    """A small valid dataset with two modalities, built in memory."""
    rng = np.random.default_rng(seed)
    train, valid, test = [], [], []
    for u in range(n_users):
        items = rng.choice(n_items, size=per_user, replace=False)
        train += [(u, int(i)) for i in items[:-2]]
        valid.append((u, int(items[-2])))
        test.append((u, int(items[-1])))
    seen = {i for _, i in train}
    train += [(k % n_users, i) for k, i in enumerate(sorted(set(range(n_items)) - seen))]
    as_array = lambda rows: np.unique(np.array(rows, dtype=np.int64), axis=0)  # noqa: E731
    features = {m: rng.standard_normal((n_items, d)).astype(np.float32) for m, d in (("image", 6), ("text", 4))}
    return Dataset("tiny", n_users, n_items, as_array(train), as_array(valid), as_array(test), features,
                   fingerprint=f"tiny-{seed}")


def check_method(method_cls: type[UnlearningMethod], backbone: str = "lightgcn", regime: str = "interaction") -> None:
    """Run every conformance rule on ``method_cls``; raise AssertionError on a failure."""
    assert method_cls.name, "register the method (METHODS.register) so it has a name"
    for h in method_cls.hyperparameters:
        assert h.name and h.kind in (int, float, bool, str), f"hyperparameter {h.name!r}: bad type"
        if h.low is not None and h.high is not None and not h.per_branch:
            assert h.low <= h.default <= h.high, f"hyperparameter {h.name!r}: default outside its range"
    try:
        method_cls(__no_such_parameter__=1)
    except UserError:
        pass
    else:
        raise AssertionError("an unknown hyperparameter must raise UserError")

    dataset = tiny_dataset()
    task = make_task(dataset, regime, "random", 0.2, seed=0)
    forget_before = task.forget.copy()
    original = build_backbone(backbone, dataset, 0)
    config = TrainConfig.for_backbone(type(original), max_epochs=3, batch_size=64)
    train(original, torch.from_numpy(dataset.train), torch.from_numpy(dataset.valid), config, 0, progress=False)

    def scratch(pairs):
        model = build_backbone(backbone, dataset, 0)
        train(model, torch.from_numpy(pairs), torch.from_numpy(dataset.valid), config, 0, progress=False)
        return model

    def run():
        method = method_cls()
        budget = Budget(epochs=2, batch_size=16, seed=0, train_from_scratch=scratch)
        model = method.unlearn(copy.deepcopy(original), task, budget)
        return method, model

    first, model = run()
    _, again = run()
    shapes = {k: v.shape for k, v in original.named_parameters()}
    assert {k: v.shape for k, v in model.named_parameters()} == shapes, "unlearn changed parameter names or shapes"
    with torch.no_grad():
        users, items = model.eval()(UserItemGraph(torch.from_numpy(task.retain), task.n_users, task.n_items))
    assert torch.isfinite(users @ items.T).all(), "scores are not finite after unlearning"
    assert np.array_equal(task.forget, forget_before), "unlearn modified the task"
    for key, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), f"same seed, different '{key}'"
    json.dumps(first.summary())
