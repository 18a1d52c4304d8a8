"""The unlearning-method contract and its registry.

Lifecycle of an :class:`UnlearningMethod`:

1. ``cls(**params)``: each declared :class:`HyperParameter` is validated (type, range);
   missing ones take their default; an unknown name is an error naming it.
2. ``unlearn(model, task, budget) -> model``: ``model`` is the trained original
   (``theta0``), to be run on the retained graph ``task.retain_graph()``; the method
   may edit it in place and returns the unlearned model. ``budget`` fixes what every
   approximate method may spend (epochs over ``D_f``, batch size) and the seed, so
   comparisons are fair; it also carries ``train_from_scratch`` for exact retraining.
3. ``summary()``: what the method decided (goes into the record, as JSON).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np

from backbones.base import Backbone
from harness.errors import UserError
from harness.registry import Registry

METHODS = Registry("method", "tru.methods")


@dataclass(frozen=True)
class HyperParameter:
    """A declared hyperparameter: type, default and search range ``[low, high]``.

    ``per_branch``: a JSON object ``{"branch": value}`` (a ``str``) with one number per
    branch the backbone names; ``[low, high]`` is then the range of each value, and a
    sweep searches one dimension per branch (see :mod:`tuning.space`)."""

    name: str
    kind: type
    default: Any
    low: float | None = None
    high: float | None = None
    log: bool = False
    doc: str = ""
    per_branch: bool = False

    def validate(self, method: str, value):
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.kind) or (self.kind is int and isinstance(value, bool)):
            raise UserError(f"method '{method}': hyperparameter '{self.name}' must be {self.kind.__name__}, got {value!r}")
        if self.per_branch:
            return value  # the method parses and checks its JSON
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            raise UserError(
                f"method '{method}': hyperparameter '{self.name}'={value} outside [{self.low}, {self.high}]"
            )
        return value

    def describe(self) -> dict:
        return {"type": self.kind.__name__, "default": self.default, "low": self.low, "high": self.high, "log": self.log,
                "per_branch": self.per_branch}


@dataclass(frozen=True)
class Budget:
    """What every approximate method may spend, the seed, and exact retraining."""

    epochs: int = 10
    batch_size: int = 2048
    seed: int = 0
    train_from_scratch: Callable[[np.ndarray], Backbone] | None = field(default=None, compare=False)


class UnlearningMethod:
    """Base class; see the module docstring for the lifecycle."""

    name: ClassVar[str] = ""
    hyperparameters: ClassVar[tuple[HyperParameter, ...]] = ()
    #: names searched by default in a sweep (None: every hyperparameter with a range)
    tuned: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, **params):
        declared = {h.name: h for h in self.hyperparameters}
        for key in params:
            if key not in declared:
                valid = ", ".join(declared) or "none"
                raise UserError(f"method '{self.name}': unknown hyperparameter '{key}' (valid: {valid})")
        self.params = {
            name: h.validate(self.name, params.get(name, h.default)) for name, h in declared.items()
        }
        self.decisions: dict = {}

    def unlearn(self, model: Backbone, task, budget: Budget) -> Backbone:
        raise NotImplementedError

    def summary(self) -> dict:
        return self.decisions

    @classmethod
    def describe(cls) -> dict:
        return {h.name: h.describe() for h in cls.hyperparameters}
