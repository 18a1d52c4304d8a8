"""A model host: one (dataset, backbone, seed) loaded once, serving unlearning jobs.

Lifecycle: ``ModelHost(...)`` imports the experiment's plugins, sets torch's thread
count, picks its device and takes the dataset it is given: the driver loads and
validates each dataset once and ships it through Ray's object store
(:func:`ship_datasets`), so no actor reads the driver's files (a worker node of a real
cluster has none of them); ``shard_plan(job)`` and
``train_shard(shard)`` let the runner train a partitioned method's shards across the
model's actors before its job runs; ``run(job)`` builds the job's forget task,
trains or loads (model cache) the original and the retrained reference the first time
that task is seen (and, on a report seed, the second retrained reference), keeps them,
runs the method and returns the result record. Its model cache is a folder or a URI
(:class:`harness.storage.model_cache.ModelCache`); on a URI, hosts of every node take
turns through the cluster's lease table (:mod:`harness.distributed.leases`, made by
:func:`start_hosts`), so each model is trained once per cluster.

The class is plain Python (unit tests and the Ray-overhead benchmark call it directly);
:func:`remote_host` wraps it as a Ray actor. A host on a GPU uses the device Ray gave
it (Ray sets the device visibility of the actor's process; the harness never does).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import os
import socket
from pathlib import Path

import ray
import torch

from harness.core.devices import pick_device
from backbones import BACKBONES
from harness.data.datasets import Dataset, load_dataset
from harness.data.regimes import make_steps, make_task
from harness.distributed.experiment import Job, RegimeSpec, step_key
from harness.distributed.leases import ClusterLease, lease_table
from harness.protocol import records
from harness.protocol.models import build_backbone
from harness.protocol.shards import ShardTrainer, read_record, write_record
from harness.protocol.training import TrainConfig
from harness.protocol.unlearning import RETRAIN2_SEED_OFFSET, References, prepare, run_method, run_steps, train_reference
from harness.storage.locations import is_uri
from harness.storage.model_cache import ModelCache
from methods import METHODS, Budget, ForgetTask, ShardJob


class ModelHost:
    def __init__(self, dataset: Dataset, backbone: str, seed: int, *, training: dict, hparams: dict,
                 audit_size: int, cache_dir: str, plugins: list[str], num_threads: int, use_gpu: bool = False,
                 budget: Budget = Budget(), experiment: str = "", report: bool = False,
                 lease: ClusterLease | None = None):
        for module in plugins:
            importlib.import_module(module)
        torch.set_num_threads(max(1, num_threads))
        self.device = pick_device(use_gpu)
        self.dataset = owned(dataset)
        self.backbone, self.seed = backbone, seed
        self.training, self.hparams = training, hparams
        self.audit_size = audit_size
        self.cache = ModelCache(cache_dir, lease)
        self.budget = budget
        self.experiment = experiment
        self.report = report  # a report seed: second retrain, audit on test pairs
        self.references: dict[tuple, References] = {}

    def info(self) -> dict:
        """Where this host runs: process, node, device, torch threads and Ray's GPU ids."""
        gpu_ids = []
        node = socket.gethostname()
        if ray.is_initialized():
            context = ray.get_runtime_context()
            gpu_ids = [str(g) for g in context.get_accelerator_ids().get("GPU", [])]
            node = context.get_node_id()
        return {"pid": os.getpid(), "node": node, "device": str(self.device),
                "threads": torch.get_num_threads(), "gpu_ids": gpu_ids}

    def branches(self) -> list[str]:
        """The parameter branches the backbone names (a sweep's per-branch dimensions)."""
        return list(build_backbone(self.backbone, self.dataset, self.seed, self.hparams).branches())

    def settings(self) -> str:
        """What this host's records are measured under (JSON): the effective training
        settings (the backbone's defaults with the experiment's overrides), the backbone
        hyperparameters, the shared budget and the audit size."""
        training = TrainConfig.for_backbone(BACKBONES.get(self.backbone), **self.training).model_dump()
        return json.dumps({"training": training, "hparams": self.hparams, "budget": self.budget.shared(),
                           "audit_size": self.audit_size}, sort_keys=True, default=str)

    def warm(self, regime: RegimeSpec | None, second: bool = False) -> None:
        """Train into the model cache (or find there) the original (``regime`` None), the
        retrained reference of a forget task or (``second``) its second retrain, so that
        hosts sharing a model can train its references in parallel before the jobs need them."""
        seed = self.seed + RETRAIN2_SEED_OFFSET * second
        tasks = [None] if regime is None else [cumulative for _, cumulative in self.requests(regime)]
        for task in tasks:  # a sequence of requests: the reference of every step
            train_reference(self.dataset, self.backbone, seed, task, hparams=self.hparams,
                            train_overrides=self.training, device=self.device, cache_dir=self.cache, progress=False)

    def requests(self, spec: RegimeSpec) -> list[tuple[ForgetTask, ForgetTask]]:
        """``(request, cumulative task)`` per step of the regime (one step for a single request)."""
        if spec.steps == 1:
            task = make_task(self.dataset, spec.regime, spec.selection, spec.ratio, self.seed)
            return [(task, task)]
        return make_steps(self.dataset, spec.regime, spec.selection, spec.ratio, spec.steps, self.seed)

    def _prepared(self, task: ForgetTask) -> References:
        return prepare(self.dataset, self.backbone, task, self.seed, self.hparams, self.training,
                       cache_dir=self.cache, device=self.device, progress=False, audit_size=self.audit_size,
                       report=self.report)

    def steps(self, job: Job) -> list[tuple[ForgetTask, References]]:
        """Per step of ``job``'s regime, its request and the references of the cumulative
        task (kept)."""
        if job.task_key not in self.references:
            self.references[job.task_key] = [(request, self._prepared(cumulative))
                                             for request, cumulative in self.requests(job.regime)]
        return self.references[job.task_key]

    def refs(self, job: Job) -> References:
        """The original and retrained references of ``job``'s forget task (kept; a
        sequence of requests: those of its first step)."""
        return self.steps(job)[0][1]

    def shard_plan(self, job: Job) -> list[tuple[str, list[ShardJob]]]:
        """``(set key, shard jobs)`` of each shard set ``job``'s partitioned method will
        train (:meth:`methods.base.UnlearningMethod.plan`), so the runner can train them
        ahead across this model's actors; ``[]`` when its task or method fails here (the
        job itself then records the error)."""
        try:
            steps = self.steps(job)
            budget = self.budget.model_copy(update={"seed": self.seed})
            method = METHODS.get(job.method)(**job.params)  # one instance: a partition is computed once
            original = steps[0][1].original
            sets = [jobs for request, _ in steps for jobs in method.plan(copy.deepcopy(original), request, budget)]
        except Exception:  # noqa: BLE001  (reported by the job's own record)
            return []
        trainer = steps[0][1].shard_trainer()
        return [(trainer.key(jobs), jobs) for jobs in sets if jobs]

    def train_shard(self, shard: ShardJob) -> dict:
        """Train one shard model into the model cache (or find it there): its
        ``train_seconds`` and whether it was ``cached``."""
        trained = ShardTrainer(self.dataset, self.backbone, self.hparams, self.training, self.device,
                               self.cache).train_one(shard)
        return {"train_seconds": float(trained.meta["train_seconds"]), "cached": trained.cached}

    def shard_record(self, key: str) -> dict | None:
        """The measured cost of shard set ``key`` in the host's model cache (this node's
        folder, or the cluster's URI; None: none yet); read here, where the set's job will
        look for it, not on the driver."""
        return read_record(self.cache, key)

    def write_shard_record(self, key: str, train_seconds: list[float], cached: list[bool], workers: int,
                           wall_seconds: float) -> None:
        """Record shard set ``key``'s measured cost in the host's model cache."""
        write_record(self.cache, key, train_seconds, cached, workers, wall_seconds)

    def run(self, job: Job) -> dict:
        """Run ``job``; the record carries its ``run_key``, device and node. A failure of
        the task or of the method becomes a ``status: error`` record."""
        try:
            refs = self.refs(job)
            record = run_method(refs, job.method, job.params, self.budget) | job.extra | {
                "run_key": job.run_key, "experiment": self.experiment, "settings": self.settings(),
                "forget_pairs": len(refs.task.forget)}
        except Exception as exc:  # the task or the references failed: a record, not a crash
            record = job_error_record(job, self.experiment, f"{type(exc).__name__}: {exc}", self.dataset.name)
        return record | self._where()

    def run_sequence(self, job: Job) -> list[dict]:
        """Run ``job``'s sequence of requests (``steps > 1``): one record per step
        (:func:`harness.protocol.unlearning.run_steps`), with run keys
        :func:`harness.distributed.experiment.step_key`."""
        try:
            steps = self.steps(job)
            out = run_steps(steps, job.method, job.params, self.budget)
            out = [record | job.extra | {"run_key": step_key(job.run_key, record["step"]), "experiment": self.experiment,
                                         "settings": self.settings(), "forget_pairs": len(refs.task.forget)}
                   for record, (_, refs) in zip(out, steps)]
        except Exception as exc:  # the tasks or the references failed: records, not a crash
            out = job_error_records(job, self.experiment, f"{type(exc).__name__}: {exc}", self.dataset.name)
        return [record | self._where() for record in out]

    def _where(self) -> dict:
        return {"device": str(self.device), "node": self.info()["node"], "restarted": _restarted()}


def job_error_record(job: Job, experiment: str, message: str, dataset: str | None = None) -> dict:
    """The record of a job that produced no measurements (``dataset``: its name, default
    the folder's)."""
    identity = {"dataset": dataset or Path(job.dataset).name, "backbone": job.backbone, "seed": job.seed,
                "regime": job.regime.regime, "selection": job.regime.selection, "ratio": job.regime.ratio,
                "method": job.method, "params": job.params}
    return records.error_record(identity, message) | {"run_key": job.run_key, "experiment": experiment} | job.extra


def job_error_records(job: Job, experiment: str, message: str, dataset: str | None = None) -> list[dict]:
    """The records of a job that produced none: one, or one per step of a sequence."""
    record = job_error_record(job, experiment, message, dataset)
    if job.regime.steps == 1:
        return [record]
    return [record | {"run_key": step_key(job.run_key, t), "step": t} for t in range(1, job.regime.steps + 1)]


def _restarted() -> bool:
    """Whether this process is a Ray actor rebuilt after its predecessor died."""
    try:
        return ray.is_initialized() and ray.get_runtime_context().was_current_actor_reconstructed
    except Exception:  # not inside an actor
        return False


def owned(dataset: Dataset) -> Dataset:
    """``dataset`` with arrays of its own: what Ray hands an actor is read-only memory of the
    object store, shared by every actor of the node, and ``torch.from_numpy`` would share
    (and could write into) it."""
    return dataclasses.replace(dataset, train=dataset.train.copy(order="K"), valid=dataset.valid.copy(order="K"),
                               test=dataset.test.copy(order="K"),
                               features={m: f.copy(order="K") for m, f in dataset.features.items()})


def load_datasets(paths) -> dict[str, Dataset]:
    """``{path: dataset}`` of each of ``paths``, loaded and validated here on the driver,
    once: a bad dataset is the driver's one-line :class:`harness.core.errors.UserError`
    before anything is written or any actor starts."""
    return {path: load_dataset(path) for path in dict.fromkeys(paths)}


def ship_datasets(datasets: dict[str, Dataset]) -> dict:
    """``{path: object ref}``: each dataset put once in Ray's object store; an actor given
    the ref receives the arrays (zero-copy, read-only on its node), never a path."""
    return {path: ray.put(dataset) for path, dataset in datasets.items()}


def start_hosts(experiment, dataset, backbone: str, seed: int, count: int) -> list:
    """``count`` actors hosting (``dataset``: an object ref of :func:`ship_datasets`,
    ``backbone``, ``seed``) with the experiment's resources; ``num_gpus = "auto"`` asks for
    1 GPU each when the cluster has GPUs. A cache on a URI gets the cluster's lease table."""
    resources = experiment.resources
    lease = None
    if is_uri(experiment.cache_dir):
        table = lease_table()
        ray.get(table.holders.remote())  # it exists before any host asks for it
        lease = ClusterLease()
    gpus = resources.num_gpus
    if gpus == "auto":
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    actor_class = remote_host(resources.num_cpus, gpus, resources.max_restarts)
    return [
        actor_class.remote(dataset, backbone, seed, training=experiment.training,
                           hparams=experiment.hparams.get(backbone, {}), audit_size=experiment.audit_size,
                           cache_dir=experiment.cache_dir, plugins=experiment.plugins,
                           num_threads=int(resources.num_cpus), use_gpu=gpus > 0,
                           budget=experiment.budget, experiment=experiment.name,
                           report=experiment.is_report_seed(seed), lease=lease)
        for _ in range(count)
    ]


def remote_host(num_cpus: float, num_gpus: float, max_restarts: int):
    """The Ray actor class of :class:`ModelHost` with these resources; Ray restarts a
    dead actor up to ``max_restarts`` times and retries its job as often."""
    return ray.remote(ModelHost).options(
        num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=max_restarts, max_task_retries=max_restarts,
    )
