"""The unlearning-method contract: the deletion request, the budget, hyperparameters, the
base class and the registry. Plugin authors import only this module (or ``methods``).

Lifecycle of an :class:`UnlearningMethod`:

1. ``cls(**params)``: each declared :class:`HyperParameter` is validated (type, range);
   missing ones take their default; an unknown name is an error naming it.
2. ``start(model, task, budget) -> model``: the model the method unlearns from. By default
   the trained original itself; an exact partitioned method (SISA, RecEraser) trains its
   own original here, from ``D`` alone (never from which pairs ``task`` forgets), through
   ``budget.train_shards`` and ``budget.fit``. Not timed; the harness measures it as the
   method's own original. ``plan(model, task, budget)`` names the shard sets ``start``
   and ``unlearn`` will ask for, so the harness can train them ahead, in parallel.
3. ``unlearn(model, task, budget) -> model``: ``model`` is what ``start`` returned
   (``theta0``), to be run on the retained graph ``task.retain_graph()`` of the
   :class:`ForgetTask`; the method may edit it in place and returns the unlearned model.
   ``budget`` (:class:`Budget`) fixes what every approximate method may spend (epochs
   over ``D_f``, batch size) and the seed, so comparisons are fair; it also carries
   ``train_from_scratch`` for exact retraining. A method whose unlearning work ran ahead
   (shards trained across the actors, then found in the model cache) puts its measured
   wall time in ``costs["unlearn_seconds"]``, which the record reports instead of the
   harness's timing of ``unlearn``; ``costs["train_seconds_total"]`` is the sum of the
   training seconds of the models it trained.
4. ``summary()``: what the method decided (goes into the record, as JSON).

The class docstring's first line is the method's summary in ``tru methods``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from backbones.base import Backbone
from backbones.blocks.graph import UserItemGraph
from harness.core.errors import UserError
from harness.core.registry import Registry

METHODS = Registry("method", "tru.methods")


@dataclass(frozen=True, eq=False)
class ForgetTask:
    """One deletion request on one dataset; arrays of ``(user, item)`` pairs ``[n, 2]``.

    In a sequence of requests (a regime with ``steps``), ``earlier`` holds the pairs the
    previous requests deleted: ``D = retain + forget + earlier``, and the model a method
    receives has already unlearned ``earlier``."""

    regime: str
    selection: str
    ratio: float
    seed: int
    forget: np.ndarray
    retain: np.ndarray
    users: np.ndarray  # users with at least one forgotten pair
    items: np.ndarray  # items with at least one forgotten pair
    n_users: int
    n_items: int
    valid: np.ndarray  # the dataset's validation pairs (held-out non-members for TRU's p*)
    earlier: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    step: int | None = None  # 1, 2, ... in a sequence of requests; None for a single request

    @property
    def removed_users(self) -> np.ndarray:
        """Users deleted as a whole (user regime), by this request or an earlier one: they
        leave retained evaluation."""
        if self.regime != "user":
            return np.zeros(0, dtype=np.int64)
        return self.users if len(self.earlier) == 0 else np.union1d(self.users, self.earlier[:, 0])

    def retained_users(self) -> torch.Tensor:
        """Ids of the users that remain (all but :attr:`removed_users`), ``[n]``."""
        kept = torch.ones(self.n_users, dtype=torch.bool)
        kept[torch.from_numpy(self.removed_users)] = False
        return kept.nonzero().squeeze(1)

    def retained_valid(self) -> np.ndarray:
        """Validation pairs of the users that remain (deleted users guide no retraining)."""
        if len(self.removed_users) == 0:
            return self.valid
        return self.valid[~np.isin(self.valid[:, 0], self.removed_users)]

    @property
    def key(self) -> str:
        """A hash of the forget set (cache keys of retrained references)."""
        return hashlib.sha256(np.ascontiguousarray(self.forget).tobytes()).hexdigest()[:16]

    def retain_graph(self) -> UserItemGraph:
        return UserItemGraph(torch.from_numpy(self.retain), self.n_users, self.n_items)

    def describe(self) -> dict:
        return {
            "regime": self.regime, "selection": self.selection, "ratio": self.ratio,
            "forget_pairs": len(self.forget), "forget_users": len(self.users),
            "forget_items": len(self.items), "forget_key": self.key,
        }



@dataclass(frozen=True, eq=False)
class ShardJob:
    """One shard model to train: the backbone from initialisation seed ``seed`` on
    ``train`` pairs ``[n, 2]``, early-stopped on ``valid`` pairs ``[m, 2]``."""

    train: np.ndarray
    valid: np.ndarray
    seed: int


@dataclass(frozen=True)
class TrainedShards:
    """A trained shard set: the models in the order of its jobs, each one's training
    seconds (when it was trained), and the wall time training the set took on
    ``workers`` workers (measured when it was trained; a set found in the model cache
    reports that measurement)."""

    models: list
    train_seconds: list[float]
    wall_seconds: float
    workers: int


class Budget(BaseModel):
    """What every approximate method may spend, the seed, and exact retraining.

    ``epochs`` and ``batch_size`` are the shared budget an experiment's ``[budget]`` table
    sets (these defaults are the harness's); ``seed`` and ``train_from_scratch`` are set
    by the harness for each job (the job's seed; a trainer of the job's backbone).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    SHARED: ClassVar[tuple[str, ...]] = ("epochs", "batch_size")

    epochs: int = Field(10, ge=1, description="passes over D_f")
    batch_size: int = Field(2048, ge=1, description="D_f pairs per step (and D_r pairs beside them)")
    seed: int = Field(0, ge=0, description="the job's seed")
    train_from_scratch: Callable[[np.ndarray], Backbone] | None = Field(
        None, exclude=True, description="trains the job's backbone from scratch on the given pairs")
    train_shards: Callable[[list[ShardJob]], TrainedShards] | None = Field(
        None, exclude=True, description="trains (or finds in the model cache) one backbone per shard job")
    fit: Callable[[Backbone, np.ndarray, np.ndarray], float] | None = Field(
        None, exclude=True, description="trains a model's trainable parameters in place with the harness's loop "
                                        "on (train pairs, validation pairs); returns the seconds it took")

    def shared(self) -> dict:
        """The shared part (``epochs``, ``batch_size``), for run keys and records."""
        return {name: getattr(self, name) for name in self.SHARED}


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
        """Type, default, bounds and the range as text (``[low, high]``, `` log``, `` per branch``)."""
        out = {"type": self.kind.__name__, "default": self.default, "low": self.low, "high": self.high, "log": self.log,
               "per_branch": self.per_branch, "doc": self.doc}
        if self.low is not None or self.high is not None:
            out["range"] = f"[{self.low}, {self.high}]" + " log" * self.log + " per branch" * self.per_branch
        return out


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
        self.costs: dict = {}

    def plan(self, model: Backbone, task: ForgetTask, budget: Budget) -> list[list[ShardJob]]:
        """The shard sets :meth:`start` and :meth:`unlearn` will train, in order (none by default)."""
        return []

    def start(self, model: Backbone, task: ForgetTask, budget: Budget) -> Backbone:
        """The model to unlearn from: the trained original (module docstring)."""
        return model

    def unlearn(self, model: Backbone, task: ForgetTask, budget: Budget) -> Backbone:
        raise NotImplementedError

    def summary(self) -> dict:
        return self.decisions

    @classmethod
    def describe(cls) -> dict:
        """``{name: {"type", "default", "low", "high", "log", "per_branch", "doc", "tuned"}}``;
        ``tuned``: whether a sweep searches it by default (:attr:`tuned`)."""
        searched = cls.searched()
        return {h.name: h.describe() | {"tuned": h.name in searched} for h in cls.hyperparameters}

    @classmethod
    def searched(cls) -> list[str]:
        """The hyperparameters a sweep searches by default: those of :attr:`tuned` the class
        declares, else every ``bool`` or ranged one."""
        if cls.tuned is not None:
            declared = {h.name for h in cls.hyperparameters}
            return [name for name in cls.tuned if name in declared]
        return [h.name for h in cls.hyperparameters if h.kind is bool or (h.low is not None and h.high is not None)]
