"""Multi-objective sweeps: Ray Tune + Optuna over a method's hyperparameters.

``run_sweep(experiment, method, trials, out)``:

1. starts ``actors_per_model`` model hosts for the experiment's one dataset and backbone
   at each of its *development* seeds (data and references loaded once, not per trial);
   a trial runs its configuration on every development seed x regime of the
   experiment, and its objectives are the means over those tasks (one record each);
2. searches with ``OptunaSearch`` given the list of objectives and the list of modes
   (metric and mode are *not* set in ``TuneConfig``, which would make it
   single-objective), a seeded TPE or NSGA-II sampler, and the study in SQLite
   (``DIR/_study.db``, so ``optuna-dashboard sqlite:///DIR/_study.db`` opens it). The
   study is named: its ``metric_names`` are the objectives, its user attributes the
   method, dataset, backbone, regimes, development seeds, objectives, sampler and space
   (:meth:`_Sweep.attributes`; also written to ``DIR/_sweeps/<sweep>.json`` for the
   report), and each Optuna trial's user attribute ``trial_id`` is the Tune trial id
   its records carry;
3. stores every trial's records (``sweep``, ``trial_id``, ``split = "valid"``,
   ``config``; validation figures only, :func:`tuning.trainable.run_trial`) the moment
   it reports, from the driver; with ``progress``, a bar of trials on stderr (Tune's
   own lines go to the run log, :func:`harness.distributed.cluster.ray_session`);
4. takes the Pareto front of the trials' mean objectives (validation figures of the
   development tasks) and re-evaluates those configurations as ordinary jobs on the
   report seeds (``retest_seeds``, default all; ``split = "test"``): the front is chosen
   on development tasks only, the report figures are only reported.

Sweeps of several methods may share one folder (and so one report and one study file);
a folder that already holds this sweep needs ``--resume``, and a folder made by another
experiment or with other settings (its manifest, :mod:`harness.distributed.store`) is
refused.

Resume (``--resume`` after the driver was killed): trials the study still shows as
running are marked failed; trials stored as records but not completed in the study are
told to it; the search runs ``trials - stored`` more, so the sweep ends with exactly
``trials`` trials (each with one record per development task), none repeated.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import ray
from optuna.distributions import distribution_to_json
from optuna.samplers import TPESampler
from optuna.trial import TrialState
from ray import tune
from ray.tune.search.optuna import OptunaSearch
from tqdm import tqdm

from harness.core.errors import Interrupted, UserError
from harness.distributed.cluster import ray_session
from harness.distributed.experiment import Experiment, MethodSpec
from harness.distributed.host import load_datasets, ship_datasets, start_hosts
from harness.distributed.runner import run_experiment
from harness.distributed.store import ResultsStore, identity, local_folder, with_sweep
from harness.protocol.records import Objective, objectives
from methods import METHODS
from reports.pareto import pareto_mask
from tuning.samplers import PicklableNSGAIISampler
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
    """The records of a sweep's trials (one per trial and development task)."""
    return trials_in(store.read(), sweep)


def trials_in(frame: pd.DataFrame, sweep: str) -> pd.DataFrame:
    """The trial records of ``sweep`` among the store's records ``frame``."""
    return frame[(frame["sweep"] == sweep) & (frame["split"] == "valid")].reset_index(drop=True)


def trials_of(records: pd.DataFrame, objs: list[Objective]) -> pd.DataFrame:
    """One row per trial: ``trial_id``, ``params``, ``config``, ``tasks`` (its records),
    ``ok`` (all of them succeeded) and each objective's mean over its tasks."""
    rows = []
    for trial_id, group in records.groupby("trial_id", sort=False):
        row = {"trial_id": trial_id, "method": group["method"].iloc[0], "params": group["params"].iloc[0],
               "config": group["config"].iloc[0], "tasks": len(group), "ok": bool((group["status"] == "ok").all())}
        for o in objs:
            row[o.name] = float(np.mean([o.value(r) for r in group.to_dict("records")])) if row["ok"] else np.nan
            row[f"{o.name}_target"] = float(np.mean([o.target(r) for r in group.to_dict("records")])) if row["ok"] else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=["trial_id", "method", "params", "config", "tasks", "ok"]
                        + [c for o in objs for c in (o.name, f"{o.name}_target")])


def front_of(records: pd.DataFrame, objs: list[Objective]) -> pd.DataFrame:
    """The trials (:func:`trials_of`) on the Pareto front of their mean objectives
    (failed trials never are)."""
    trials = trials_of(records, objs)
    ok = trials[trials["ok"]]
    if ok.empty:
        return ok
    return ok[pareto_mask(ok[[o.name for o in objs]].to_numpy(), [o.mode == "max" for o in objs])]


def nearest_to_retraining(front: pd.DataFrame, objs: list[Objective]) -> pd.Series | None:
    """The one rule that picks a configuration from a front: the trial nearest the
    retrained model, ``argmin sum_k (shortfall_k / scale_k)^2``. ``shortfall_k`` is how
    far the trial is from objective k's target (the retrained model's value, on the same
    tasks) in the worse direction only (0 when it does at least as well); ``scale_k`` =
    ``|target_k|``, or 1 when the target is 0 (the distances ``forget_ks``, ``abs_*``).

    A trial missing an objective or its target (NaN) is never nearest, since its distance
    is unknown; ``None`` when no trial has them all (or there is none)."""
    if front.empty:
        return None
    distance = np.zeros(len(front))
    for o in objs:
        value, target = front[o.name].to_numpy(float), front[f"{o.name}_target"].to_numpy(float)
        shortfall = np.maximum(target - value, 0) if o.mode == "max" else np.maximum(value - target, 0)
        scale = np.where(np.abs(target) > 0, np.abs(target), 1.0)
        distance += (shortfall / scale) ** 2
    known = np.flatnonzero(~np.isnan(distance))
    return front.iloc[int(known[np.argmin(distance[known])])] if len(known) else None


def single_requests(experiment: Experiment, command: str) -> None:
    """Sweeps select on single requests: a regime with ``steps > 1`` is a
    :class:`UserError` naming it (``tru run`` measures sequences of requests)."""
    for i, regime in enumerate(experiment.regimes):
        if regime.steps > 1:
            raise UserError(f"{command}: regimes[{i}] has steps = {regime.steps}; sweeps tune on single requests "
                            "(measure a sequence of requests with tru run)")


def run_sweep(experiment: Experiment, method: str, trials: int, out: str | Path, *, resume: bool = False,
              address: str | None = None, progress: bool = True, retest: bool = True,
              manifest: dict | None = None) -> SweepSummary:
    """Steps 1-4 of the module docstring. ``manifest``: the store identity of the folder's
    experiment (default ``experiment``'s; ``tru compare`` passes its own), to which this
    sweep's settings are added; a folder of another experiment, other settings or another
    run of this sweep with other settings is refused before anything is written."""
    for key in ("datasets", "backbones"):
        if len(getattr(experiment, key)) != 1:
            raise UserError(f"tru tune: the experiment must name exactly one dataset and backbone "
                            f"(it names {len(getattr(experiment, key))} {key})")
    if trials < 1:
        raise UserError(f"--trials {trials}: must be >= 1")
    single_requests(experiment, "tru tune")
    store = ResultsStore(out)  # the records: a folder or a URI
    out = local_folder(out).resolve()  # the study, Tune's state, the log and the sweep description
    sweep = _Sweep(experiment, method, trials, out, store, sweep_name(experiment, method),
                   objectives(experiment.tune.objectives), address, progress)
    sweep.manifest = with_sweep(manifest or identity(experiment), sweep.name, experiment)
    store.check(sweep.manifest)
    sweep.done = trial_records(store, sweep.name)
    if len(sweep.done) and not resume:
        raise UserError(f"{out}: already holds sweep '{sweep.name}'; pass --resume to continue it, or choose another --out")
    search_space(METHODS.get(method), [], experiment.tune.space)  # a bad override fails before any work
    sweep.datasets = load_datasets(experiment.datasets)  # a bad dataset too
    store.claim(sweep.manifest)
    try:
        with ray_session(experiment, address, out):
            sweep.search()
            return sweep.summary(retest)
    finally:
        store.publish(out)  # a store on a URI gets the study, the log and the sweep description


@dataclass
class _Sweep:
    """One sweep of ``method`` on the experiment's one dataset and backbone, its regimes and
    development seeds."""

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
    manifest: dict | None = None  # the store identity the folder carries (harness.distributed.store)
    datasets: dict | None = None  # {path: Dataset}, loaded on the driver (harness.distributed.host.load_datasets)

    def search(self) -> None:
        """Run the trials still missing on model-host actors (steps 1-3 of the module docstring)."""
        experiment, settings = self.experiment, self.experiment.tune
        dataset, backbone = experiment.datasets[0], experiment.backbones[0]
        seeds = experiment.development_seeds
        hosts: dict[int, list] = {}
        pools: dict = {}
        try:
            shipped = ship_datasets(self.datasets)[dataset]
            hosts = {seed: start_hosts(experiment, shipped, backbone, seed, experiment.resources.actors_per_model)
                     for seed in seeds}
            first = hosts[seeds[0]][0]
            space, fixed = search_space(METHODS.get(self.method), ray.get(first.branches.remote()), settings.space)
            storage = optuna.storages.RDBStorage(f"sqlite:///{self.out / '_study.db'}")
            tasks = len(seeds) * len(experiment.regimes)
            stored = _reconcile(storage, self.name, self.done, space, self.objectives, tasks)
            annotate_study(optuna.load_study(study_name=self.name, storage=storage), self.attributes(space))
            write_sweep_info(self.out, self.name, self.attributes(space) | {"trials": self.trials})
            remaining = self.trials - stored
            LOG.info("sweep %s: %d trials stored, %d to run; space %s", self.name, stored, remaining,
                     sorted(space))
            if remaining <= 0:
                return
            sampler_cls = TPESampler if settings.sampler == "tpe" else PicklableNSGAIISampler
            searcher = _NamedOptunaSearch(
                space, metric=[o.name for o in self.objectives], mode=[o.mode for o in self.objectives],
                sampler=sampler_cls(seed=settings.seed + stored), study_name=self.name, storage=storage,
            )
            pools = {seed: HostPool.remote(len(hosts[seed])) for seed in seeds}
            trainable = tune.with_parameters(
                run_trial, pools=pools, hosts=hosts, experiment=experiment, dataset=dataset, backbone=backbone,
                method=self.method, fixed=fixed, objective_names=settings.objectives, sweep=self.name,
            )
            with tqdm(total=self.trials, initial=stored, desc=self.name, unit="trial", disable=not self.progress,
                      dynamic_ncols=True, file=sys.stderr) as bar:
                tuner = tune.Tuner(
                    tune.with_resources(trainable, {"cpu": 0, "memory": 64 * 2**20}),  # the work runs on the hosts
                    tune_config=tune.TuneConfig(search_alg=searcher, num_samples=remaining,
                                                max_concurrent_trials=experiment.resources.actors_per_model,
                                                reuse_actors=True),
                    # verbose=0: no per-trial tables; what Tune still prints on stdout (its box, the
                    # TensorBoard hint) goes to the run log (harness.distributed.cluster.ray_session)
                    run_config=tune.RunConfig(name=self.name, storage_path=str(self.out / "_tune"), verbose=0,
                                              callbacks=[_StoreWriter(self.store, bar)]),
                )
                results = tuner.fit()
            _check_complete(self, results)
        finally:  # every actor of this sweep, so a compare's many sweeps do not pile them up
            for actor in [h for group in hosts.values() for h in group] + list(pools.values()):
                ray.kill(actor)

    def attributes(self, space: dict) -> dict:
        """What the study and the report say about this sweep: method, dataset, backbone,
        regimes, development seeds, objectives (name and mode), sampler and seed, and the
        search space (each dimension's Optuna distribution as JSON)."""
        settings = self.experiment.tune
        return {"sweep": self.name, "method": self.method, "dataset": Path(self.experiment.datasets[0]).name,
                "backbone": self.experiment.backbones[0],
                "regimes": [r.model_dump() for r in self.experiment.regimes],
                "development_seeds": list(self.experiment.development_seeds),
                "objectives": [{"name": o.name, "mode": o.mode} for o in self.objectives],
                "sampler": settings.sampler, "sampler_seed": settings.seed,
                "space": {name: distribution_to_json(d) for name, d in sorted(space.items())},
                "study": f"sqlite:///{self.out / '_study.db'}"}

    def summary(self, retest: bool) -> SweepSummary:
        """The Pareto front of every stored trial, re-evaluated on the report seeds
        (``retest_seeds``) when ``retest`` (step 4)."""
        records = trial_records(self.store, self.name)
        front = front_of(records, self.objectives)
        retested = 0
        if retest and not front.empty:
            specs = retest_specs(self.method, front["params"].drop_duplicates())
            seeds = self.experiment.tune.retest_seeds or self.experiment.report_seeds
            derived = self.experiment.model_copy(update={"methods": specs, "report_seeds": seeds})
            run = run_experiment(derived, self.store.location, resume=True, address=self.address, progress=self.progress,
                                 extra={"sweep": self.name, "split": "test"}, manifest=self.manifest)
            if run.interrupted:
                raise Interrupted(f"sweep {self.name}: re-test interrupted after {run.done} records in {self.store.location}; "
                                  "run again with --resume")
            retested = run.done
        trials, before = records["trial_id"].nunique(), self.done["trial_id"].nunique()
        return SweepSummary(self.name, trials, trials - before, front, retested)


def retest_specs(method: str, params) -> list[MethodSpec]:
    """The specs that re-run ``method`` at each recorded ``params`` (JSON). A record's
    params are the method's effective settings; the spec keeps the ones it declares (a TRU
    ablation records the intervention it fixes, which its constructor does not accept)."""
    declared = {h.name for h in METHODS.get(method).hyperparameters}
    return [MethodSpec(name=method, params={k: v for k, v in json.loads(p).items() if k in declared}) for p in params]


def _check_complete(sweep: _Sweep, results) -> None:
    """Raise :class:`Interrupted` when the search ended with fewer than ``trials`` trials
    stored: Tune catches Ctrl-C itself and returns early, and a sweep cut short must not
    re-test a front of a partial search (nor ``tru compare`` go on to the next method)."""
    stored = trial_records(sweep.store, sweep.name)["trial_id"].nunique()
    if stored < sweep.trials:
        failed = len(results.errors)
        why = f"; {failed} trials failed (see {sweep.out / '_logs' / 'run.log'})" if failed else ""
        raise Interrupted(f"sweep {sweep.name}: {stored} of {sweep.trials} trials stored in {sweep.store.location}{why}; "
                          "run again with --resume")


def _reconcile(storage, sweep: str, done: pd.DataFrame, space: dict, objs: list[Objective], tasks: int) -> int:
    """Make the study agree with the stored trial records (after a killed driver); return
    how many trials are stored (a trial's records are written together, one per task)."""
    try:
        study = optuna.load_study(study_name=sweep, storage=storage)
    except KeyError:
        study = optuna.create_study(study_name=sweep, storage=storage, directions=[
            "maximize" if o.mode == "max" else "minimize" for o in objs])
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    told = {json.dumps(t.params, sort_keys=True) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    trials = trials_of(done, objs)
    for row in trials[trials["ok"] & (trials["tasks"] == tasks)].to_dict("records"):
        config = json.loads(row["config"])
        if json.dumps(config, sort_keys=True) in told:
            continue
        values = [row[o.name] for o in objs]
        if any(math.isnan(v) for v in values) or set(config) != set(space):
            continue
        study.add_trial(optuna.trial.create_trial(params=config, distributions=space, values=values,
                                                  user_attrs={"trial_id": row["trial_id"]}))
    return len(trials)


def annotate_study(study: optuna.Study, attributes: dict) -> None:
    """Name the study's objectives (``metric_names``, so optuna-dashboard shows them) and
    store ``attributes`` (:meth:`_Sweep.attributes`) as its user attributes."""
    names = [o["name"] for o in attributes["objectives"]]
    if study.metric_names != names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
    for key, value in attributes.items():
        study.set_user_attr(key, value)


def write_sweep_info(out: Path, sweep: str, info: dict) -> Path:
    """``out/_sweeps/<sweep>.json``: what the report states about a sweep (objectives,
    trials asked, space, sampler, study path), written atomically."""
    return Path(ResultsStore(out).write_bytes(f"_sweeps/{sweep}.json", json.dumps(info, indent=1, sort_keys=True).encode()))


class _NamedOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that stores each trial's Tune ``trial_id`` (the id its records
    carry) as the Optuna trial's user attribute ``trial_id``."""

    def suggest(self, trial_id: str):
        config = super().suggest(trial_id)
        trial = getattr(self, "_ot_trials", {}).get(trial_id)
        if trial is not None:
            trial.set_user_attr("trial_id", trial_id)
        return config


class _StoreWriter(tune.Callback):
    """Driver side: store each trial's records the moment it reports; count it on ``bar``."""

    def __init__(self, store: ResultsStore, bar=None):
        self.store = store
        self.bar = bar

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.store.append(json.loads(result["records"]))
        if self.bar is not None:
            self.bar.update(1)
