"""Conformance suite for unlearning methods, shipped for plugin authors.

    from harness.protocol.conformance import check_method
    check_method(MyMethod)            # raises ConformanceError naming the broken rule

Rules: hyperparameters are declared with a type, a default inside their range, and
a name; unknown hyperparameters are rejected; ``unlearn`` returns a backbone with the
original's parameter names and shapes and finite scores; it leaves the task untouched;
the same seed gives identical parameters; ``summary()`` is JSON-serialisable.
Runs in seconds on the tiny generated dataset (:mod:`harness.data.tiny`).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import torch

from backbones.blocks.graph import UserItemGraph
from harness.core.errors import UserError
from harness.data.regimes import make_task
from harness.data.tiny import tiny_dataset
from harness.protocol.models import build_backbone
from harness.protocol.training import TrainConfig, train
from methods.base import Budget, UnlearningMethod


class ConformanceError(AssertionError):
    """A broken conformance rule (an ``AssertionError``, so test runners show it as a failure)."""


def _require(condition, rule: str) -> None:
    """Raise :class:`ConformanceError` when ``condition`` is false (unlike ``assert``, also
    under ``python -O``)."""
    if not condition:
        raise ConformanceError(rule)


def check_method(method_cls: type[UnlearningMethod], backbone: str = "lightgcn", regime: str = "interaction") -> None:
    """Run every conformance rule on ``method_cls``; raise :class:`ConformanceError` on a failure."""
    _require(method_cls.name, "register the method (METHODS.register) so it has a name")
    for h in method_cls.hyperparameters:
        _require(h.name and h.kind in (int, float, bool, str), f"hyperparameter {h.name!r}: bad type")
        if h.low is not None and h.high is not None and not h.per_branch:
            _require(h.low <= h.default <= h.high, f"hyperparameter {h.name!r}: default outside its range")
    try:
        method_cls(__no_such_parameter__=1)
    except UserError:
        pass
    else:
        raise ConformanceError("an unknown hyperparameter must raise UserError")

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
    _require({k: v.shape for k, v in model.named_parameters()} == shapes, "unlearn changed parameter names or shapes")
    with torch.no_grad():
        users, items = model.eval()(UserItemGraph(torch.from_numpy(task.retain), task.n_users, task.n_items))
    _require(torch.isfinite(users @ items.T).all(), "scores are not finite after unlearning")
    _require(np.array_equal(task.forget, forget_before), "unlearn modified the task")
    for key, value in model.state_dict().items():
        _require(torch.equal(value, again.state_dict()[key]), f"same seed, different '{key}'")
    try:
        json.dumps(first.summary())
    except TypeError as exc:
        raise ConformanceError(f"summary() is not JSON-serialisable ({exc})") from None
