"""Multi-objective sweeps: Ray Tune + Optuna over a method's hyperparameters.

``run_sweep(experiment, method, trials, out)``:

1. starts ``actors_per_model`` model hosts for the experiment's one dataset, backbone
   and regime at its first seed (data and references loaded once, not per trial);
2. searches with ``OptunaSearch`` given the list of objectives and the list of modes
   (metric and mode are *not* set in ``TuneConfig``, which would make it
   single-objective), a seeded TPE or NSGA-II sampler, and the study in SQLite
   (``DIR/_study.db``, so ``optuna-dashboard sqlite:///DIR/_study.db`` opens it);
3. stores every trial as a record (``sweep``, ``trial_id``, ``split = "valid"``,
   ``config``) the moment it reports, from the driver;
4. takes the validation Pareto front of the sweep's records and re-evaluates those
   configurations as ordinary jobs over ``retest_seeds`` (``split = "test"``): the
   front is chosen on validation figures only, the test figures are only reported.

Sweeps of several methods may share one folder (and so one report and one study file);
a folder that already holds this sweep needs ``--resume``.

Resume (``--resume`` after the driver was killed): trials the study still shows as
running are marked failed; trials stored as records but not completed in the study are
told to it; the search runs ``trials - stored`` more, so the sweep ends with exactly
``trials`` trial records, none repeated.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import ray
from optuna.samplers import NSGAIISampler, TPESampler
from optuna.trial import TrialState
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from harness.core.errors import UserError
from harness.distributed.cluster import ray_session
from harness.distributed.experiment import Experiment, MethodSpec
from harness.distributed.host import start_hosts
from harness.distributed.runner import run_experiment
from harness.distributed.store import ResultsStore
from harness.protocol.records import Objective, objectives
from methods import METHODS
from reports.pareto import pareto_mask
from tuning.space import search_space
from tuning.trainable import HostPool, run_trial

LOG = logging.getLogger("tru")


@dataclass
class SweepSummary:
    sweep: str
    trials: int
    ran: int
    front: pd.DataFrame
    retested: int


def sweep_name(experiment: Experiment, method: str) -> str:
    return f"{experiment.name}-{method}"


def trial_records(store: ResultsStore, sweep: str) -> pd.DataFrame:
    frame = store.read()
    return frame[(frame["sweep"] == sweep) & (frame["split"] == "valid")].reset_index(drop=True)


def front_of(records: pd.DataFrame, objs: list[Objective]) -> pd.DataFrame:
    """The records on the validation Pareto front of ``objs`` (errors never are)."""
    ok = records[records["status"] == "ok"]
    if ok.empty:
        return ok
    values = np.array([[o.value(row) for o in objs] for row in ok.to_dict("records")])
    return ok[pareto_mask(values, [o.mode == "max" for o in objs])]


def run_sweep(experiment: Experiment, method: str, trials: int, out: str | Path, *, resume: bool = False,
              address: str | None = None, progress: bool = True, retest: bool = True) -> SweepSummary:
    for key in ("datasets", "backbones", "regimes"):
        if len(getattr(experiment, key)) != 1:
            raise UserError(f"tru tune: the experiment must name exactly one dataset, backbone and regime "
                            f"(it names {len(getattr(experiment, key))} {key})")
    if trials < 1:
        raise UserError(f"--trials {trials}: must be >= 1")
    out = Path(out).resolve()
    store = ResultsStore(out)
    sweep = _Sweep(experiment, method, trials, out, store, sweep_name(experiment, method),
                   objectives(experiment.tune.objectives), address, progress)
    sweep.done = trial_records(store, sweep.name)
    if len(sweep.done) and not resume:
        raise UserError(f"{out}: already holds sweep '{sweep.name}'; pass --resume to continue it, or choose another --out")
    search_space(METHODS.get(method), [], experiment.tune.space)  # a bad override fails before any work
    with ray_session(experiment.ray, address, out):
        sweep.search()
        return sweep.summary(retest)


@dataclass
class _Sweep:
    """One sweep of ``method`` on the experiment's one dataset, backbone and regime (first seed)."""

    experiment: Experiment
    method: str
    trials: int
    out: Path
    store: ResultsStore
    name: str
    objectives: list[Objective]
    address: str | None
    progress: bool
    done: pd.DataFrame | None = None  # the trial records stored before this call

    def search(self) -> None:
        """Run the trials still missing on model-host actors (steps 1-3 of the module docstring)."""
        experiment, settings = self.experiment, self.experiment.tune
        dataset, backbone, regime = experiment.datasets[0], experiment.backbones[0], experiment.regimes[0]
        seed = experiment.seeds[0]
        hosts = []
        try:
            hosts = start_hosts(experiment, dataset, backbone, seed, experiment.resources.actors_per_model)
            space, fixed = search_space(METHODS.get(self.method), ray.get(hosts[0].branches.remote()), settings.space)
            storage = optuna.storages.RDBStorage(f"sqlite:///{self.out / '_study.db'}")
            _reconcile(storage, self.name, self.done, space, self.objectives)
            remaining = self.trials - len(self.done)
            LOG.info("sweep %s: %d trials stored, %d to run; space %s", self.name, len(self.done), remaining,
                     sorted(space))
            if remaining <= 0:
                return
            sampler_cls = TPESampler if settings.sampler == "tpe" else NSGAIISampler
            searcher = OptunaSearch(
                space, metric=[o.name for o in self.objectives], mode=[o.mode for o in self.objectives],
                sampler=sampler_cls(seed=settings.seed + len(self.done)), study_name=self.name, storage=storage,
            )
            trainable = tune.with_parameters(
                run_trial, pool=HostPool.remote(len(hosts)), hosts=hosts, experiment=experiment, dataset=dataset,
                backbone=backbone, seed=seed, regime=regime, method=self.method, fixed=fixed,
                objective_names=settings.objectives, sweep=self.name,
            )
            tuner = tune.Tuner(
                tune.with_resources(trainable, {"cpu": 0, "memory": 64 * 2**20}),  # the work runs on the hosts
                tune_config=tune.TuneConfig(search_alg=searcher, num_samples=remaining,
                                            max_concurrent_trials=len(hosts), reuse_actors=True),
                run_config=tune.RunConfig(name=self.name, storage_path=str(self.out / "_tune"), verbose=0,
                                          callbacks=[_StoreWriter(self.store)],
                                          progress_reporter=None if self.progress else _Silent()),
            )
            quiet = {} if self.progress else {"RAY_AIR_NEW_OUTPUT": "0"}  # the new output prints even at verbose=0
            with _environ(quiet):
                tuner.fit()
        finally:
            for host in hosts:
                ray.kill(host)

    def summary(self, retest: bool) -> SweepSummary:
        """The validation Pareto front of every stored trial, re-evaluated on test over
        ``retest_seeds`` when ``retest`` (step 4)."""
        records = trial_records(self.store, self.name)
        front = front_of(records, self.objectives)
        retested = 0
        if retest and not front.empty:
            specs = [MethodSpec(name=self.method, params=json.loads(p)) for p in front["params"].drop_duplicates()]
            seeds = self.experiment.tune.retest_seeds or self.experiment.seeds
            derived = self.experiment.model_copy(update={"methods": specs, "seeds": seeds})
            retested = run_experiment(derived, self.out, resume=True, address=self.address, progress=self.progress,
                                      extra={"sweep": self.name, "split": "test"}).done
        return SweepSummary(self.name, len(records), len(records) - len(self.done), front, retested)


def _reconcile(storage, sweep: str, done: pd.DataFrame, space: dict, objs: list[Objective]) -> None:
    """Make the study agree with the stored trial records (after a killed driver)."""
    try:
        study = optuna.load_study(study_name=sweep, storage=storage)
    except KeyError:
        study = optuna.create_study(study_name=sweep, storage=storage, directions=[
            "maximize" if o.mode == "max" else "minimize" for o in objs])
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    told = {json.dumps(t.params, sort_keys=True) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    for row in done[done["status"] == "ok"].to_dict("records"):
        config = json.loads(row["config"])
        if json.dumps(config, sort_keys=True) in told:
            continue
        values = [o.value(row) for o in objs]
        if any(math.isnan(v) for v in values) or set(config) != set(space):
            continue
        study.add_trial(optuna.trial.create_trial(params=config, distributions=space, values=values))


@contextlib.contextmanager
def _environ(values: dict):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


class _StoreWriter(tune.Callback):
    """Driver side: store each trial's record the moment it reports."""

    def __init__(self, store: ResultsStore):
        self.store = store

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.store.append([json.loads(result["record"])])


class _Silent(tune.ProgressReporter):
    def should_report(self, trials, done=False):
        return False

    def report(self, trials, done, *sys_info):
        pass
