"""Experiment files (TOML) validated into typed objects, and their expansion into jobs.

An experiment names datasets, backbones, seeds, regimes, methods (with hyperparameters),
training settings, the shared unlearning budget and the resources of each actor::

    datasets = ["ml100k"]             # shipped names or MMRec folders (relative to the file)
    backbones = ["mgcn"]
    seeds = [0]
    methods = "all"                    # or [[methods]] tables: name = "tru", params = {...}

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

Everything is checked before any work starts: an unknown key, a wrong type, an unknown
dataset/backbone/method name or an out-of-range value is a :class:`UserError` naming the
key. :func:`expand` turns an experiment into :class:`Job` s, each with a ``run_key`` (a
hash of everything the record depends on) that the results store uses to resume.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.errors import UserError
from harness.regimes import REGIMES, SELECTIONS

QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegimeSpec(_Strict):
    regime: Literal[REGIMES]  # type: ignore[valid-type]
    selection: Literal[SELECTIONS] = "random"  # type: ignore[valid-type]
    ratio: float = Field(0.05, gt=0.0, lt=1.0)


class MethodSpec(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class Budget(_Strict):
    """The shared budget of every approximate method (see :class:`methods.base.Budget`)."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(2048, ge=1)


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
    object_store_mb: int = Field(512, ge=80, description="object store of a local Ray")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a local Ray (default: all)")


class TuneSettings(_Strict):
    """``[tune]``: how ``tru tune`` searches (see :mod:`tuning.sweep`)."""

    objectives: list[str] = Field(["retain_valid_ndcg@20", "forget_recall@20"], min_length=1,
                                  description="names from tuning.objectives.OBJECTIVES")
    sampler: Literal["tpe", "nsga2"] = "tpe"
    seed: int = Field(0, ge=0, description="the sampler's seed")
    space: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per hyperparameter: low, high, log, choices or value")
    retest_seeds: list[int] | None = Field(None, description="seeds of the test re-evaluation of the front (default: seeds)")


class Experiment(_Strict):
    name: str = "experiment"
    datasets: list[str] = Field(min_length=1)
    backbones: list[str] = Field(min_length=1)
    seeds: list[int] = Field([0], min_length=1)
    regimes: list[RegimeSpec] = Field(min_length=1)
    methods: Literal["all"] | list[MethodSpec] = "all"
    training: dict[str, Any] = Field(default_factory=dict)
    hparams: dict[str, dict[str, Any]] = Field(default_factory=dict, description="backbone -> hyperparameters")
    budget: Budget = Budget()
    audit_size: int = Field(2000, ge=10)
    resources: Resources = Resources()
    ray: RaySettings = RaySettings()
    tune: TuneSettings = TuneSettings()
    plugins: list[str] = Field(default_factory=list, description="modules imported by the driver and every actor")
    cache_dir: str = ".cache/models"

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value):
        if any(s < 0 for s in value):
            raise ValueError("seeds must be >= 0")
        return value

    def method_specs(self) -> list[MethodSpec]:
        from methods import METHODS

        if self.methods == "all":
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
        return (self.regime.regime, self.regime.selection, self.regime.ratio)


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
    try:
        experiment = Experiment(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        value = f" (got {first['input']!r})" if first["type"] != "missing" and not isinstance(first["input"], dict) else ""
        raise UserError(f"{path}: {key}: {first['msg']}{value}") from None
    return check_names(experiment, path)


def check_names(experiment: Experiment, path: Path) -> Experiment:
    """Resolve dataset folders (relative to the file) and the cache folder, import plugins,
    and check every dataset, backbone, method and hyperparameter before any work."""
    import importlib

    from backbones import BACKBONES
    from harness.data import resolve
    from harness.pipeline import validate_hparams
    from harness.train import TrainConfig
    from methods import METHODS

    def fail(key: str, error: Exception):
        raise UserError(f"{path}: {key}: {error}") from None

    for i, module in enumerate(experiment.plugins):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            fail(f"plugins[{i}]", f"cannot import '{module}' ({exc})")
    datasets = []
    for i, name in enumerate(experiment.datasets):
        folder = path.parent / name
        if folder.is_dir():  # a folder relative to the experiment file
            name = str(folder.resolve())
        try:
            resolve(name)
        except UserError as exc:
            fail(f"datasets[{i}]", exc)
        datasets.append(name)
    for i, name in enumerate(experiment.backbones):
        try:
            backbone = BACKBONES.get(name)
            validate_hparams(name, experiment.hparams.get(name, {}))
            TrainConfig.for_backbone(backbone, **experiment.training)
        except UserError as exc:
            fail(f"backbones[{i}]", exc)
    for name in experiment.hparams:
        if name not in experiment.backbones:
            fail(f"hparams.{name}", "not one of the experiment's backbones")
    for i, spec in enumerate(experiment.method_specs()):
        try:
            METHODS.get(spec.name)(**spec.params)
        except UserError as exc:
            fail(f"methods[{i}]", exc)
    from tuning.objectives import objectives

    try:
        objectives(experiment.tune.objectives)
    except UserError as exc:
        fail("tune.objectives", str(exc).removeprefix("tune.objectives: "))
    cache = Path(experiment.cache_dir)
    cache = cache if cache.is_absolute() else Path.cwd() / cache
    return experiment.model_copy(update={"datasets": datasets, "cache_dir": str(cache)})


def make_job(experiment: Experiment, dataset: str, backbone: str, seed: int, regime: RegimeSpec, method: str,
             params: dict, extra: dict | None = None) -> Job:
    """A job whose ``run_key`` hashes everything its record depends on (and ``extra``,
    the fields a sweep adds to the record)."""
    from harness.pipeline import CODE_VERSION

    identity = {
        "dataset": dataset, "backbone": backbone, "seed": seed, "regime": regime.model_dump(), "method": method,
        "params": params, "training": experiment.training, "hparams": experiment.hparams.get(backbone, {}),
        "budget": experiment.budget.model_dump(), "audit_size": experiment.audit_size, "code": CODE_VERSION,
    } | ({"extra": extra} if extra else {})
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    return Job(dataset=dataset, backbone=backbone, seed=seed, regime=regime, method=method, params=params,
               run_key=key, extra=extra or {})


def expand(experiment: Experiment, extra: dict | None = None) -> list[Job]:
    """The grid datasets x backbones x seeds x regimes x methods, in that order."""
    return [
        make_job(experiment, dataset, backbone, seed, regime, spec.name, spec.params, extra)
        for dataset in experiment.datasets
        for backbone in experiment.backbones
        for seed in experiment.seeds
        for regime in experiment.regimes
        for spec in experiment.method_specs()
    ]
