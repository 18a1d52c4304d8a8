"""Conformance rules for unlearning methods, shipped for plugin authors.

Each rule is one function of a :class:`Subject` (a method, a backbone and a regime on
the tiny generated dataset, :mod:`harness.data.tiny`) that raises
:class:`ConformanceError` naming what is broken. :data:`RULES` lists them in order; two
front ends read that one list, so each rule has one home:

- :mod:`harness.protocol.conformance_suite`: ``MethodConformance``, a pytest test class
  with one named test per rule (what a plugin author runs with ``pytest``);
- :func:`check_method`, for scripts: runs every rule, prints one line per rule and
  raises :class:`ConformanceError` naming every rule that failed.

The rules: the method is registered (decorator or entry point); its hyperparameters are
declared (a name, a type, a default that passes its own validation); an unknown
hyperparameter raises ``UserError``; ``start`` and ``unlearn`` run without raising;
``unlearn`` returns a backbone with the parameter names and shapes of the model it
started from (the original, or the method's own from ``start``) and finite scores; it
leaves the task untouched; the same seed gives identical parameters; ``start`` gives the
same model whichever pairs are forgotten; ``summary()`` is JSON.
A method that raises or returns ``None`` fails the rules that need its model by name.
Runs in seconds on the tiny dataset.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import traceback
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np
import torch

from backbones import BACKBONES
from backbones.base import Backbone
from backbones.blocks.graph import UserItemGraph
from harness.core.errors import UserError
from harness.data.regimes import make_task
from harness.data.tiny import tiny_dataset
from harness.protocol.models import build_backbone
from harness.protocol.shards import ShardTrainer
from harness.protocol.training import TrainConfig, train
from methods.base import METHODS, Budget, ForgetTask, HyperParameter, UnlearningMethod


#: the training settings of the tiny originals, retrains, shard models and aggregators
TRAINING = {"max_epochs": 3, "batch_size": 64}


class ConformanceError(AssertionError):
    """A broken conformance rule (an ``AssertionError``, so test runners show it as a failure)."""


def _require(condition, rule: str) -> None:
    """Raise :class:`ConformanceError` when ``condition`` is false (unlike ``assert``, also
    under ``python -O``)."""
    __tracebackhide__ = True  # pytest shows the rule's message, not this frame
    if not condition:
        raise ConformanceError(rule)


@dataclass
class Run:
    """One call of ``cls().start(copy of the original, task, budget)`` and ``unlearn`` of
    what it returned: the instance, the returned model, or the exception it raised
    (construction included)."""

    method: UnlearningMethod | None
    model: object = None
    error: BaseException | None = None
    start: object = None  # what ``start`` returned (the original, or the method's own)

    def describe_error(self) -> str:
        """``unlearn raised Kind: message (at file:line)``, the frame that raised."""
        frame = traceback.extract_tb(self.error.__traceback__)[-1] if self.error.__traceback__ else None
        where = f" (at {frame.filename}:{frame.lineno})" if frame else ""
        return f"unlearn raised {type(self.error).__name__}: {self.error}{where}"


class Subject:
    """What the rules look at: ``method`` (a class, or a registered name) with ``backbone``
    on a ``regime`` task of the tiny dataset. The trained original and the two seeded
    runs of ``unlearn`` are made on first use and shared by every rule."""

    def __init__(self, method: type[UnlearningMethod] | str, backbone: str = "lightgcn",
                 regime: str = "interaction"):
        self.cls = METHODS.get(method) if isinstance(method, str) else method
        self.name = method if isinstance(method, str) else METHODS.name_of(method)
        self.backbone, self.regime = backbone, regime

    def __repr__(self) -> str:
        return f"{self.name or self.cls.__name__}-{self.backbone}-{self.regime}"

    @cached_property
    def dataset(self):
        return tiny_dataset()

    @cached_property
    def task(self) -> ForgetTask:
        return make_task(self.dataset, self.regime, "random", 0.2, seed=0)

    @cached_property
    def task_before(self) -> dict:
        """A deep copy of every field of :attr:`task`, taken before any run."""
        return {f.name: copy.deepcopy(getattr(self.task, f.name)) for f in dataclasses.fields(self.task)}

    def _trained(self, pairs: np.ndarray) -> Backbone:
        """A ``backbone`` trained for 3 epochs on ``pairs`` (the original; exact retraining)."""
        model = build_backbone(self.backbone, self.dataset, 0)
        self._fit(model, pairs, self.dataset.valid)
        return model

    def _fit(self, model: Backbone, pairs: np.ndarray, valid: np.ndarray) -> float:
        config = TrainConfig.for_backbone(BACKBONES.get(self.backbone), **TRAINING)
        return train(model, torch.from_numpy(pairs), torch.from_numpy(valid), config, 0, progress=False).seconds

    @cached_property
    def budget(self) -> Budget:
        """The runs' budget, with the tiny trainers (from scratch, shard sets, fit)."""
        shards = ShardTrainer(self.dataset, self.backbone, {}, TRAINING, torch.device("cpu"), None)
        return Budget(epochs=2, batch_size=16, seed=0, train_from_scratch=self._trained, train_shards=shards,
                      fit=self._fit)

    @cached_property
    def original(self) -> Backbone:
        return self._trained(self.dataset.train)

    def _run(self) -> Run:
        self.task_before  # noqa: B018  (snapshot before the method sees the task)
        budget = self.budget
        method = None
        try:
            method = self.cls()
            start = method.start(copy.deepcopy(self.original), self.task, budget)
            snapshot = copy.deepcopy(start)
            return Run(method, method.unlearn(start, self.task, budget), start=snapshot)
        except Exception as exc:  # a named failure, not a traceback
            return Run(method, error=exc)

    @cached_property
    def first(self) -> Run:
        return self._run()

    @cached_property
    def again(self) -> Run:
        self.first  # noqa: B018  (in order: the first run, then the second)
        return self._run()

    def model(self, run: Run | None = None) -> Backbone:
        """The model ``run`` (default: the first) returned; a :class:`ConformanceError` when
        it raised or returned something that is not a backbone."""
        run = run or self.first
        _require(run.error is None, run.describe_error() if run.error else "")
        _require(isinstance(run.model, Backbone),
                 f"unlearn returned {type(run.model).__name__}, not a backbone (return the unlearned model)")
        return run.model


# ---------------------------------------------------------------------------- the rules


def registered(subject: Subject) -> None:
    """The class is registered under a name (``@METHODS.register`` or a ``tru.methods`` entry point)."""
    _require(subject.name, f"{subject.cls.__name__} is not registered: add an entry point in the group "
             "'tru.methods' or decorate it with @METHODS.register(\"name\")")


def declared_hyperparameters(subject: Subject) -> None:
    """Each declared hyperparameter has a name, a type (int, float, bool, str) and a
    default that passes its own validation (type and range)."""
    _require(isinstance(subject.cls.hyperparameters, tuple), "hyperparameters must be a tuple of HyperParameter")
    names = [h.name for h in subject.cls.hyperparameters]
    _require(len(set(names)) == len(names), f"hyperparameter declared twice in {names}")
    for h in subject.cls.hyperparameters:
        _require(isinstance(h, HyperParameter), f"{h!r} is not a HyperParameter")
        _require(isinstance(h.name, str) and h.name.isidentifier(), f"hyperparameter {h.name!r}: bad name")
        _require(h.kind in (int, float, bool, str), f"hyperparameter {h.name!r}: bad type {h.kind!r}")
        _require(h.low is None or h.high is None or h.low <= h.high, f"hyperparameter {h.name!r}: low > high")
        try:
            h.validate(subject.name or subject.cls.__name__, h.default)
        except UserError as exc:
            raise ConformanceError(f"hyperparameter {h.name!r}: bad default ({exc})") from None


def unknown_hyperparameter_rejected(subject: Subject) -> None:
    """``cls(no_such_name=1)`` raises ``UserError`` (the harness turns it into one line naming it)."""
    try:
        subject.cls(__no_such_parameter__=1)
    except UserError:
        return
    except Exception as exc:
        raise ConformanceError(f"an unknown hyperparameter raised {type(exc).__name__}, not UserError "
                               "(call UnlearningMethod.__init__ with the parameters)") from None
    raise ConformanceError("an unknown hyperparameter must raise UserError")


def unlearn_runs(subject: Subject) -> None:
    """``cls()`` at its defaults and ``unlearn(model, task, budget)`` run without raising."""
    _require(subject.first.error is None, subject.first.describe_error() if subject.first.error else "")


def returns_a_backbone(subject: Subject) -> None:
    """``unlearn`` returns a backbone (the unlearned model), not ``None``."""
    subject.model()


def same_names_and_shapes(subject: Subject) -> None:
    """The returned model has exactly the parameter names and shapes of the model it
    started from (the original, or what ``start`` returned)."""
    subject.model()
    shapes = {k: tuple(v.shape) for k, v in subject.first.start.named_parameters()}
    got = {k: tuple(v.shape) for k, v in subject.model().named_parameters()}
    changed = sorted(k for k in shapes.keys() | got.keys() if shapes.get(k) != got.get(k))
    _require(not changed, "unlearn changed parameter names or shapes: " + ", ".join(
        f"{k} {shapes.get(k, 'missing')} -> {got.get(k, 'missing')}" for k in changed[:5]))


def finite_scores(subject: Subject) -> None:
    """On the retained graph the model gives ``[n_users, d]`` and ``[n_items, d]``
    embeddings and finite scores."""
    task = subject.task
    with torch.no_grad():
        users, items = subject.model().eval()(UserItemGraph(torch.from_numpy(task.retain), task.n_users, task.n_items))
    _require(users.shape[0] == task.n_users and items.shape[0] == task.n_items,
             f"embeddings {tuple(users.shape)}, {tuple(items.shape)} for {task.n_users} users, {task.n_items} items")
    _require(torch.isfinite(users @ items.T).all(), "scores are not finite after unlearning")


def task_untouched(subject: Subject) -> None:
    """``unlearn`` leaves every field of the task as it was (the harness reuses it)."""
    subject.first  # noqa: B018  (the method has run)
    for name, before in subject.task_before.items():
        after = getattr(subject.task, name)
        same = np.array_equal(after, before) if isinstance(before, np.ndarray) else after == before
        _require(same, f"unlearn modified task.{name}")


def deterministic(subject: Subject) -> None:
    """Two runs with the same seed give identical parameters and buffers."""
    first, again = subject.model(subject.first), subject.model(subject.again)
    state = again.state_dict()
    for key, value in first.state_dict().items():
        _require(key in state and torch.equal(value, state[key]), f"same seed, different '{key}'")


def start_ignores_what_is_forgotten(subject: Subject) -> None:
    """``start`` depends on ``D`` alone: two tasks forgetting different pairs of the same
    data give the same starting model (a method may not unlearn, untimed, in ``start``)."""
    other = make_task(subject.dataset, "interaction" if subject.regime == "user" else "user", "random", 0.2, seed=1)
    models = [subject.cls().start(copy.deepcopy(subject.original), task, subject.budget) for task in (subject.task, other)]
    _require(all(isinstance(m, Backbone) for m in models), "start returned something that is not a backbone")
    first, second = (m.state_dict() for m in models)
    differ = sorted(k for k in first.keys() | second.keys()
                    if k not in first or k not in second or not torch.equal(first[k], second[k]))
    _require(not differ, "start depends on which pairs are forgotten: " + ", ".join(differ[:5]))


def summary_json(subject: Subject) -> None:
    """``summary()`` after ``unlearn`` is JSON-serialisable (it goes into the record)."""
    method = subject.first.method or subject.cls()
    try:
        json.dumps(method.summary())
    except (TypeError, ValueError) as exc:
        raise ConformanceError(f"summary() is not JSON-serialisable ({exc})") from None


#: Every rule, in the order :func:`check_method` runs them (the pytest tests are named after them).
RULES: tuple[Callable[[Subject], None], ...] = (
    registered, declared_hyperparameters, unknown_hyperparameter_rejected, unlearn_runs, returns_a_backbone,
    same_names_and_shapes, finite_scores, task_untouched, deterministic, start_ignores_what_is_forgotten,
    summary_json,
)


def apply(rule: Callable[[Subject], None], subject: Subject) -> None:
    """Run one rule; an unexpected exception inside it becomes a :class:`ConformanceError`
    naming the rule (a model whose forward fails, say), not a traceback."""
    __tracebackhide__ = True
    try:
        rule(subject)
    except ConformanceError:
        raise
    except Exception as exc:
        raise ConformanceError(f"{rule.__name__}: {type(exc).__name__}: {exc}") from None


def check_method(method: type[UnlearningMethod] | str, backbone: str = "lightgcn", regime: str = "interaction",
                 out: Callable[[str], None] | None = print) -> None:
    """Run every rule on ``method`` (a class, or a registered name); print ``ok  rule`` or
    ``FAIL rule: why`` per rule through ``out`` (None: silent), then raise
    :class:`ConformanceError` naming every rule that failed."""
    subject = Subject(method, backbone, regime)
    failed = []
    for rule in RULES:
        try:
            apply(rule, subject)
        except ConformanceError as exc:
            failed.append(f"{rule.__name__}: {exc}")
            line = f"FAIL {rule.__name__}: {exc}"
        else:
            line = f"ok   {rule.__name__}"
        if out is not None:
            out(line)
    if failed:
        raise ConformanceError(f"{subject!r}: {len(failed)} of {len(RULES)} rules failed: " + "; ".join(failed))
    if out is not None:
        out(f"{subject!r}: all {len(RULES)} conformance rules pass")
