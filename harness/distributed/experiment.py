"""Experiment files (TOML) validated into typed objects, and their expansion into jobs.

An experiment names datasets, backbones, seeds, regimes, methods (with hyperparameters),
training settings, the shared unlearning budget and the resources of each actor::

    datasets = ["ml100k"]             # shipped names or MMRec folders (relative to the file)
    backbones = ["mgcn"]
    report_seeds = [0, 1, 2]           # what `tru run` and every reported table measure
    development_seeds = [100]          # what tuning and every "chosen" configuration read
    methods = "all"                    # the built-ins; "all+plugins"; or [[methods]] tables: name = "tru", params = {...}

    [[regimes]]
    regime = "interaction"             # interaction | user | item
    selection = "random"               # random | core | edge
    ratio = 0.05

    [training]                         # overrides of each backbone's training defaults
    max_epochs = 80

    [resources]
    actors_per_model = 2               # actors hosting each (dataset, backbone, seed)
    num_cpus = 1
    num_gpus = "auto"                  # 1 per actor when the cluster has GPUs, else 0

A seed names one task: its own original model, ``D_f`` draw and retrained references.
Development and report seeds must not overlap, so no reported figure comes from a task
a selection saw; report seeds also get the second retrained reference (the noise floor).

Everything is checked before any work starts: an unknown key, a wrong type, an unknown
dataset/backbone/method name or an out-of-range value is a :class:`UserError` naming the
key. :func:`expand` turns an experiment into :class:`Job` s, each with a ``run_key`` (a
hash of everything the record depends on) that the results store uses to resume.
"""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer, model_validator

from backbones import BACKBONES
from harness.core.errors import UserError, one_line
from harness.core.paths import DEFAULT_CACHE
from harness.data.datasets import resolve
from harness.data.regimes import REGIMES, SELECTIONS
from harness.protocol import records
from harness.protocol.audit import AUDIT_SIZE
from harness.protocol.training import TrainConfig
from harness.protocol.unlearning import code_version
from harness.storage.locations import check_writable, normalised
from methods import METHODS, Budget


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegimeSpec(_Strict):
    """A deletion regime; ``steps = k > 1``: ``k`` requests of ``ratio`` each, one after
    another on the same model (:func:`harness.data.regimes.make_steps`), one record per step."""

    regime: Literal[REGIMES]  # type: ignore[valid-type]
    selection: Literal[SELECTIONS] = "random"  # type: ignore[valid-type]
    ratio: float = Field(0.05, gt=0.0, lt=1.0)
    steps: int = Field(1, ge=1, le=100, description="requests applied one after another")

    @model_serializer(mode="wrap")
    def _without_one_step(self, handler):
        """A single request dumps as before ``steps`` existed, so its run keys and stored
        experiment settings do not change."""
        out = handler(self)
        if out.get("steps") == 1:
            out.pop("steps")
        return out


class MethodSpec(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class Resources(_Strict):
    actors_per_model: int = Field(1, ge=1, description="actors hosting each (dataset, backbone, seed)")
    num_cpus: float = Field(1.0, gt=0.0, description="CPUs per actor (also its torch thread count)")
    num_gpus: float | Literal["auto"] = Field("auto", description='GPUs per actor; "auto": 1 if the cluster has GPUs')
    max_restarts: int = Field(2, ge=0, description="restarts of a dead actor; its job is retried as often")

    @field_validator("num_gpus")
    @classmethod
    def _non_negative(cls, value):
        if value != "auto" and value < 0:
            raise ValueError("must be >= 0 or \"auto\"")
        return value


class RaySettings(_Strict):
    dashboard: bool = False
    ship_code: bool = Field(False, description="send the project's own packages to the workers (runtime_env)")
    object_store_mb: int = Field(512, ge=80, description="object store of a local Ray")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a local Ray (default: all)")


class TuneSettings(_Strict):
    """``[tune]``: how ``tru tune`` searches (see :mod:`tuning.sweep`)."""

    objectives: list[str] = Field(list(records.DEFAULT_OBJECTIVES), min_length=1,
                                  description="names from harness.protocol.records.OBJECTIVES")
    sampler: Literal["tpe", "nsga2"] = "tpe"
    seed: int = Field(0, ge=0, description="the sampler's seed")
    space: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per hyperparameter: low, high, log, choices or value")
    retest_seeds: list[int] | None = Field(
        None, description="report seeds of the re-evaluation of the front (default: report_seeds)")


class Experiment(_Strict):
    name: str = "experiment"
    datasets: list[str] = Field(min_length=1)
    backbones: list[str] = Field(min_length=1)
    report_seeds: list[int] = Field([0], min_length=1, description="seeds of `tru run` and of every reported table")
    development_seeds: list[int] = Field([100], min_length=1, description="seeds tuning and selection read")
    regimes: list[RegimeSpec] = Field(min_length=1)
    methods: Literal["all", "all+plugins"] | list[MethodSpec] = Field(
        "all", description='"all": the built-in methods; "all+plugins": every registered one; or a list')
    training: dict[str, Any] = Field(default_factory=dict)
    hparams: dict[str, dict[str, Any]] = Field(default_factory=dict, description="backbone -> hyperparameters")
    budget: Budget = Budget()
    audit_size: int = Field(AUDIT_SIZE, ge=10)
    resources: Resources = Resources()
    ray: RaySettings = RaySettings()
    tune: TuneSettings = TuneSettings()
    plugins: list[str] = Field(default_factory=list, description="modules imported by the driver and every actor")
    cache_dir: str = str(DEFAULT_CACHE)

    @field_validator("methods", mode="before")
    @classmethod
    def _methods_word(cls, value):
        if not isinstance(value, list) and value not in ("all", "all+plugins"):
            raise ValueError('must be "all" (the built-in methods), "all+plugins" (every registered one) or a '
                             "list of {name, params} tables")
        return value

    @field_validator("report_seeds", "development_seeds")
    @classmethod
    def _seeds(cls, value):
        if any(s < 0 for s in value):
            raise ValueError("seeds must be >= 0")
        if len(set(value)) != len(value):
            raise ValueError(f"repeated seed in {value}")
        return value

    @model_validator(mode="after")
    def _disjoint_seeds(self):
        shared = sorted(set(self.report_seeds) & set(self.development_seeds))
        if shared:
            raise ValueError(f"development_seeds and report_seeds overlap at {shared}: a reported figure must "
                             "come from tasks no selection saw")
        retest = self.tune.retest_seeds
        if retest is not None and not set(retest) <= set(self.report_seeds):
            raise ValueError(f"tune.retest_seeds {retest} must be report seeds ({self.report_seeds})")
        return self

    def is_report_seed(self, seed: int) -> bool:
        """Report seeds' tasks get the second retrained reference and audit with test
        non-members; development seeds' with validation ones (what tuning may read)."""
        return seed in self.report_seeds

    @field_validator("budget")
    @classmethod
    def _shared_budget(cls, value: Budget):
        if value.model_fields_set - set(Budget.SHARED):
            raise ValueError(f"only {', '.join(Budget.SHARED)} are set here (the seed is each job's)")
        return value

    def method_specs(self) -> list[MethodSpec]:
        """``"all"``: the built-in methods at their defaults, never an installed plugin (an
        experiment's grid must not change with the environment); ``"all+plugins"``: every
        registered method, entry points and ``plugins`` modules included; else the list."""
        if self.methods == "all":
            return [MethodSpec(name=name) for name in METHODS.builtin_names()]
        if self.methods == "all+plugins":
            return [MethodSpec(name=name) for name in METHODS.names()]
        return list(self.methods)


class Job(BaseModel):
    """One unit of work: one method on one forget task of one (dataset, backbone, seed)."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    backbone: str
    seed: int
    regime: RegimeSpec
    method: str
    params: dict[str, Any]
    run_key: str
    extra: dict[str, Any] = Field(default_factory=dict, description="fields added to the record (sweeps)")

    @property
    def host_key(self) -> tuple[str, str, int]:
        return (self.dataset, self.backbone, self.seed)

    @property
    def task_key(self) -> tuple:
        return (self.regime.regime, self.regime.selection, self.regime.ratio, self.regime.steps)

    @property
    def done_key(self) -> str:
        """The ``run_key`` whose record says the job is done: its own, or for a sequence of
        requests that of its last step (a job's step records are stored together)."""
        return self.run_key if self.regime.steps == 1 else step_key(self.run_key, self.regime.steps)


def step_key(run_key: str, step: int) -> str:
    """The ``run_key`` of step ``step``'s record of a sequential job."""
    return f"{run_key}-step{step}"


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file; every mistake is a one-line :class:`UserError`."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such experiment file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    raw.setdefault("name", path.stem)
    return experiment_from(raw, path)


def experiment_from(fields: dict, path: Path = Path("inline.toml")) -> Experiment:
    """An experiment from a mapping (a parsed file, or one built in code), validated;
    errors name ``path`` and the key; relative dataset folders are read from ``path``'s folder."""
    if "seeds" in fields:
        raise UserError(f"{path}: seeds: protocol v2 splits seeds into report_seeds (what is reported) and "
                        "development_seeds (what tuning reads); rename the key")
    try:
        experiment = Experiment(**fields)
    except ValidationError as exc:
        raise one_line(exc, f"{path}: {{key}}: {{msg}}{{got}}") from None
    return resolve_and_check(experiment, path)


def resolve_and_check(experiment: Experiment, path: Path) -> Experiment:
    """Import the plugins, resolve dataset folders (relative to the file) and the cache
    folder, and check every backbone, method and objective before any work; a mistake is
    a :class:`UserError` naming ``path`` and the key."""
    try:
        _import_plugins(experiment.plugins)
        datasets = _resolve_datasets(experiment.datasets, path.parent)
        _check_backbones(experiment)
        _check_methods(experiment)
        _check_objectives(experiment.tune.objectives)
    except _KeyError as exc:
        raise UserError(f"{path}: {exc.key}: {exc.error}") from None
    return experiment.model_copy(update={"datasets": datasets, "cache_dir": cache_location(experiment.cache_dir, path)})


def cache_location(location: str, path: Path | str) -> str:
    """The model cache of an experiment (``cache_dir``: a folder, relative to the working
    directory, or a URI, :mod:`harness.storage.locations`), checked writable now, so that a
    cache the run could not write is a one-line error before any work."""
    location = normalised(location)
    try:
        check_writable(location, "cache_dir")
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    return location


class _KeyError(Exception):
    """A mistake at one key of the experiment (turned into a one-line error)."""

    def __init__(self, key: str, error):
        super().__init__(key)
        self.key, self.error = key, error


def _import_plugins(modules: list[str]) -> None:
    for i, module in enumerate(modules):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise _KeyError(f"plugins[{i}]", f"cannot import '{module}' ({exc})") from None


def _resolve_datasets(names: list[str], folder: Path) -> list[str]:
    """Shipped names as given; a folder relative to the experiment file as an absolute path."""
    out = []
    for i, name in enumerate(names):
        relative = folder / name
        if relative.is_dir():
            name = str(relative.resolve())
        try:
            resolve(name)
        except UserError as exc:
            raise _KeyError(f"datasets[{i}]", exc) from None
        out.append(name)
    return out


def _check_backbones(experiment: Experiment) -> None:
    for i, name in enumerate(experiment.backbones):
        try:
            backbone = BACKBONES.get(name)
            backbone.validate_hparams(experiment.hparams.get(name, {}))
            TrainConfig.for_backbone(backbone, **experiment.training)
        except UserError as exc:
            raise _KeyError(f"backbones[{i}]", exc) from None
    for name in experiment.hparams:
        if name not in experiment.backbones:
            raise _KeyError(f"hparams.{name}", "not one of the experiment's backbones")


def _check_methods(experiment: Experiment) -> None:
    for i, spec in enumerate(experiment.method_specs()):
        try:
            METHODS.get(spec.name)(**spec.params)
        except UserError as exc:
            raise _KeyError(f"methods[{i}]", exc) from None


def _check_objectives(names: list[str]) -> None:
    try:
        records.objectives(names)
    except UserError as exc:
        raise _KeyError("tune.objectives", str(exc).removeprefix("tune.objectives: ")) from None


def make_job(experiment: Experiment, dataset: str, backbone: str, seed: int, regime: RegimeSpec, method: str,
             params: dict, extra: dict | None = None) -> Job:
    """A job whose ``run_key`` hashes everything its record depends on
    (:data:`harness.protocol.records.RUN_IDENTITY`) and ``extra``, the fields a sweep adds."""
    key = records.run_key({
        "dataset": dataset, "backbone": backbone, "seed": seed, "regime": regime.model_dump(), "method": method,
        "params": params, "training": experiment.training, "hparams": experiment.hparams.get(backbone, {}),
        "budget": experiment.budget.shared(), "audit_size": experiment.audit_size,
        "references": {"models": ["original", "retrain"] + ["retrain2"] * experiment.is_report_seed(seed),
                       "audit": "test" if experiment.is_report_seed(seed) else "valid"},
    }, code_version(backbone, method), extra)
    return Job(dataset=dataset, backbone=backbone, seed=seed, regime=regime, method=method, params=params,
               run_key=key, extra=extra or {})


def expand(experiment: Experiment, extra: dict | None = None) -> list[Job]:
    """The grid datasets x backbones x report seeds x regimes x methods, in that order."""
    return [
        make_job(experiment, dataset, backbone, seed, regime, spec.name, spec.params, extra)
        for dataset in experiment.datasets
        for backbone in experiment.backbones
        for seed in experiment.report_seeds
        for regime in experiment.regimes
        for spec in experiment.method_specs()
    ]
