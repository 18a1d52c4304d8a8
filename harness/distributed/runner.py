"""The experiment runner: jobs -> Ray actors -> records in the results store.

``run_experiment`` expands the experiment into jobs, drops those whose ``run_key`` the
store already holds (``resume``), starts ``actors_per_model`` actors per (dataset,
backbone, seed) that still has work, and keeps each actor busy with one job at a time.
When several actors host one model, they first train its original and the retrained
reference of each forget task (on report seeds also the second retrain) side by side into
the model cache (``warm``). A model with jobs of a partitioned method (SISA, RecEraser)
then trains their shard sets: its actors ask the jobs for their plans, and once the plans
are in and none of the model's live actors is busy, each set is trained across them
(:mod:`harness.distributed.shards`), its wall time measured as the jobs' cost; the
event loop waits meanwhile. An actor is live once it has answered its first call; the
sets wait up to :data:`START_GRACE` seconds for actors of the model Ray has not started
(on a machine too small for all of them, the sets then train on the live ones and their
records say how many). Then a free
actor takes, in order of preference, a job of a forget task it already holds (its
references are in memory), a task no other actor of its model holds, any job. Each
finished record is written at once (one store file per record).

Faults: a method or task that raises comes back as a ``status: error`` record; an actor
that dies is restarted by Ray and its job retried, up to ``max_restarts`` times (Ray's
``max_restarts`` / ``max_task_retries``), after which the job is stored as an error and
a record computed by a rebuilt actor says ``restarted``; Ctrl-C stops
the actors and keeps every finished record. An actor whose model has no jobs left is
released, so its resources go to the actors still waiting.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import ray
from tqdm import tqdm

from harness.core.errors import UserError
from harness.distributed.cluster import ray_session
from harness.distributed.experiment import Experiment, Job, expand
from harness.distributed.host import job_error_records, load_datasets, ship_datasets, start_hosts
from harness.distributed.shards import partitioned, train_sets
from harness.distributed.store import ResultsStore, identity, local_folder

LOG = logging.getLogger("tru")


@dataclass
class RunSummary:
    out: str | Path  # the results store: a folder or a URI
    total: int
    skipped: int
    done: int = 0
    errors: int = 0
    seconds: float = 0.0
    interrupted: bool = False


@dataclass
class _Slot:
    """One actor, what it holds, whether it has answered yet (Ray started it) and whether
    it was released (killed: no jobs left)."""

    actor: object
    host: tuple
    tasks: set = field(default_factory=set)
    alive: bool = False
    released: bool = False


#: in-flight markers: an actor's first call (``ModelHost.info``), a shard plan (``ModelHost.shard_plan``)
PING, PLAN = object(), object()
#: how long a model's shard sets wait for its actors that Ray has not started (then they
#: train on the live ones, and the records say how many)
START_GRACE = 60.0
#: how often a model waiting for its actors looks again (seconds)
WAIT_STEP = 5.0


def _plan(ref) -> list:
    try:
        return ray.get(ref)
    except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError):
        return []  # the jobs that need it record the failure


def pending_jobs(experiment: Experiment, store: ResultsStore, extra: dict | None = None) -> tuple[list[Job], int]:
    """Jobs whose record is not stored yet, and how many were skipped."""
    jobs = expand(experiment, extra)
    stored = store.keys()
    todo = [j for j in jobs if j.done_key not in stored]
    return todo, len(jobs) - len(todo)


def run_experiment(experiment: Experiment, out: str | Path, *, resume: bool = False, address: str | None = None,
                   progress: bool = True, extra: dict | None = None, manifest: dict | None = None) -> RunSummary:
    """Run every job of ``experiment`` not yet stored in ``out``; see the module docstring.
    ``extra``: fields added to every record (and to its ``run_key``). ``manifest``: the
    store identity ``out`` must carry (:func:`harness.distributed.store.identity`; default
    ``experiment``'s own; a sweep or ``tru compare`` passes the one of the experiment the
    folder belongs to). A folder of another experiment or other settings is refused before
    anything is written."""
    store = ResultsStore(out)  # a folder or a URI (harness.distributed.store)
    manifest = manifest or identity(experiment)
    store.check(manifest)
    if store.files() and not resume:
        raise UserError(f"{out}: already holds results; pass --resume to add the missing ones, or choose another --out")
    todo, skipped = pending_jobs(experiment, store, extra)
    summary = RunSummary(out, total=len(todo) + skipped, skipped=skipped)
    if not todo:
        return summary
    datasets = load_datasets(job.dataset for job in todo)
    store.claim(manifest)
    folder = local_folder(out)  # the log (and, for a URI, its copy there when the run ends)
    try:
        with ray_session(experiment, address, folder):
            _run(experiment, todo, ship_datasets(datasets), store, summary, progress)
    finally:
        store.publish(folder)
    return summary


def _run(experiment: Experiment, todo: list[Job], datasets: dict, store: ResultsStore, summary: RunSummary,
         progress: bool) -> None:
    """Dispatch ``todo`` to actors and store each record as it comes (see the module docstring)."""
    start = time.perf_counter()
    slots: list[_Slot] = []
    try:
        queues = collections.defaultdict(list)
        for job in todo:
            queues[job.host_key].append(job)
        slots = _start_actors(experiment, queues, datasets)
        warmups = {host: [(None, False)] + [(regime, second) for regime in {j.task_key: j.regime for j in jobs}.values()
                                            for second in [False] + [True] * experiment.is_report_seed(host[2])]
                   for host, jobs in queues.items() if sum(s.host == host for s in slots) > 1}
        plans = {host: [j for j in jobs if partitioned(j.method)] for host, jobs in queues.items()}
        sets: dict = collections.defaultdict(dict)  # host -> {set key: shard jobs}, in plan order
        planning: collections.Counter = collections.Counter()
        waiting: dict = collections.defaultdict(list)  # host -> live slots waiting for its shard sets
        since: dict = {}  # host -> when its shard sets could start but for actors not yet started
        inflight: dict = {}

        def dispatch(slot: _Slot) -> None:
            queue = queues[slot.host]
            if warmups.get(slot.host):  # hosts sharing a model first train its references side by side
                inflight[slot.actor.warm.remote(*warmups[slot.host].pop(0))] = (slot, None)
                return
            if plans.get(slot.host):  # then the shard sets of its partitioned jobs, known from their plans
                planning[slot.host] += 1
                inflight[slot.actor.shard_plan.remote(plans[slot.host].pop(0))] = (slot, PLAN)
                return
            if planning[slot.host] or sets[slot.host] or waiting[slot.host]:
                if all(s is not slot for s in waiting[slot.host]):
                    waiting[slot.host].append(slot)
                release(slot.host)
                return
            if not queue:
                slot.released = True
                ray.kill(slot.actor)  # release its resources for actors still waiting
                return
            held_elsewhere = {t for s in slots if s is not slot and s.host == slot.host for t in s.tasks}
            job = next((j for j in queue if j.task_key in slot.tasks), None) or next(
                (j for j in queue if j.task_key not in held_elsewhere), queue[0])
            queue.remove(job)
            slot.tasks.add(job.task_key)
            run = slot.actor.run if job.regime.steps == 1 else slot.actor.run_sequence
            inflight[run.remote(job)] = (slot, job)

        def release(host) -> None:
            """Train ``host``'s shard sets on its waiting actors (:mod:`harness.distributed.shards`)
            once its plans are in and none of its live actors is busy; actors of the model that
            have not started yet are waited for up to :data:`START_GRACE` seconds."""
            if not waiting[host] or planning[host] or any(s.host == host and s.alive for s, _ in inflight.values()):
                return
            if any(s.host == host and not s.alive and not s.released for s in slots):
                if time.monotonic() - since.setdefault(host, time.monotonic()) < START_GRACE:
                    return
            ready = list(waiting[host])
            waiting[host].clear()
            since.pop(host, None)
            LOG.info("%s: training %d shard sets on %d actors", host, len(sets[host]), len(ready))
            train_sets([s.actor for s in ready], list(sets[host].items()))
            sets[host].clear()
            for s in ready:
                dispatch(s)

        for slot in slots:  # an actor is live once it answers (Ray may not have started it yet)
            inflight[slot.actor.info.remote()] = (slot, PING)
        with tqdm(total=len(todo), desc=experiment.name, unit="job", disable=not progress, dynamic_ncols=True) as bar:
            while inflight or any(waiting.values()):
                ready = ray.wait(list(inflight), num_returns=1, timeout=WAIT_STEP if any(waiting.values()) else None)[0] \
                    if inflight else []
                if ready:
                    slot, job = inflight.pop(ready[0])
                    slot.alive = True
                    if job is PLAN:  # a failed plan is []: its job records the error
                        planning[slot.host] -= 1
                        for key, shards in _plan(ready[0]):
                            sets[slot.host].setdefault(key, shards)
                    elif job is not None and job is not PING:  # (a warm-up is not read: a failure shows in its jobs)
                        try:
                            result = ray.get(ready[0])
                            records = result if isinstance(result, list) else [result]  # a sequence: one per step
                        except ray.exceptions.RayActorError as exc:  # Ray's restarts and retries are used up
                            records = job_error_records(job, experiment.name, f"actor died: {str(exc).splitlines()[0]}")
                        except ray.exceptions.RayTaskError as exc:
                            records = job_error_records(job, experiment.name, str(exc).strip().splitlines()[-1])
                        store.append(records)  # a sequence's steps together: its last step's key says it is done
                        summary.done += 1
                        summary.errors += any(r["status"] != "ok" for r in records)
                        LOG.info("%s %s %s %s: %s %s", job.run_key, job.host_key, job.regime.regime, job.method,
                                 records[-1]["status"], records[-1].get("error") or "")
                        bar.update(1)
                    dispatch(slot)
                for host in [h for h, w in waiting.items() if w]:  # a model whose sets may now start
                    release(host)
    except KeyboardInterrupt:
        summary.interrupted = True
        LOG.warning("interrupted after %d of %d jobs", summary.done, len(todo))
    finally:
        for slot in slots:
            ray.kill(slot.actor)
        summary.seconds = time.perf_counter() - start
        LOG.info("run ended: %s", summary)


def _start_actors(experiment: Experiment, queues: dict, datasets: dict) -> list[_Slot]:
    slots = [
        _Slot(actor, host)
        for host, jobs in queues.items()
        for actor in start_hosts(experiment, datasets[host[0]], *host[1:],
                                 min(experiment.resources.actors_per_model, len(jobs)))
    ]
    LOG.info("started %d actors (%s each)", len(slots), experiment.resources)
    return slots
