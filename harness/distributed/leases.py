"""Cluster-wide turns at training a model: a lease table in one Ray actor.

Where the model cache is a URI shared by a cluster (:mod:`harness.storage.model_cache`),
a file lock only orders the processes of one node. :class:`LeaseTable` orders those of
every node: a named, detached actor (:data:`NAME` in namespace :data:`NAMESPACE`, one per
cluster, found by every driver and host) that grants a name to one holder at a time for
:data:`TERM_SECONDS`; the holder renews it every :data:`RENEW_SECONDS` while it trains
and releases it when the model is saved. A holder that dies stops renewing, and its
lease lapses after one term.

The table is kept in the actor's memory. Ray restarts the actor if it dies
(``max_restarts=-1``), empty; for one term after a restart it grants no name afresh and
lets holders re-claim theirs by renewing (*grace*), so a restart never gives one model
two trainers that both believed they held it.

:class:`ClusterLease` is what a host's cache uses (:meth:`ModelCache.turn`): it waits for
the name, or until the model is in the cache (another node trained it), polling every
:data:`POLL_SECONDS`. If the table cannot be reached for :data:`UNREACHABLE_SECONDS` it
warns and trains without a lease, and so does every later wait of that process for the
next :data:`UNREACHABLE_SECONDS` (no second minute lost per model): a lease only saves
work (the cache keeps the first model stored, :meth:`ModelCache.save`), so being unable to
reach it must not stop a run. A renewal waits at most :data:`CALL_SECONDS`, so a slow one
cannot outlast the term; a renewal the table refuses (the lease lapsed) is warned about.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
import warnings
from typing import Callable, Iterator

import ray
from ray.exceptions import GetTimeoutError, RayError

NAME = "tru-model-cache-leases"
NAMESPACE = "tru-harness"
TERM_SECONDS = 30.0
RENEW_SECONDS = 10.0
POLL_SECONDS = 2.0
UNREACHABLE_SECONDS = 60.0
CALL_SECONDS = 5.0  # the longest wait for one renewal or release (RENEW + CALL < TERM)


class LeaseTable:
    """``name -> (holder, expiry)`` (module docstring); times are this actor's monotonic clock."""

    def __init__(self, term: float = TERM_SECONDS):
        self.term = term
        self.leases: dict[str, tuple[str, float]] = {}
        self.grace_until = time.monotonic() + term if _reconstructed() else 0.0

    def _holder(self, name: str, now: float) -> str | None:
        held = self.leases.get(name)
        return held[0] if held is not None and held[1] > now else None

    def acquire(self, name: str, holder: str) -> bool:
        """Grant ``name`` to ``holder`` if no one else holds it (and not in grace)."""
        now = time.monotonic()
        current = self._holder(name, now)
        if current not in (None, holder) or (current is None and now < self.grace_until):
            return False
        self.leases[name] = (holder, now + self.term)
        return True

    def renew(self, name: str, holder: str) -> bool:
        """Extend ``holder``'s lease on ``name``; in grace, a free name is re-claimed. False:
        someone else holds it (or, out of grace, the lease lapsed)."""
        now = time.monotonic()
        current = self._holder(name, now)
        if current == holder or (current is None and now < self.grace_until):
            self.leases[name] = (holder, now + self.term)
            return True
        return False

    def release(self, name: str, holder: str) -> None:
        if self._holder(name, time.monotonic()) == holder:
            del self.leases[name]

    def holders(self) -> dict[str, str]:
        """The names held now and their holders."""
        now = time.monotonic()
        return {name: holder for name, (holder, expiry) in self.leases.items() if expiry > now}

    def restarted(self) -> bool:
        """Whether this table was rebuilt after its actor died (it started empty)."""
        return self.grace_until > 0


def _reconstructed() -> bool:
    """Whether this is an actor Ray rebuilt (False outside an actor: unit tests call the class)."""
    if not ray.is_initialized() or ray.get_runtime_context().get_actor_id() is None:
        return False
    return ray.get_runtime_context().was_current_actor_reconstructed


def lease_table(term: float = TERM_SECONDS):
    """The cluster's lease table actor, created if there is none yet."""
    actor = ray.remote(LeaseTable).options(name=NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
                                           num_cpus=0, max_restarts=-1, max_task_retries=-1)
    return actor.remote(term)


class ClusterLease:
    """A cache's cluster-wide turn at a name (module docstring); pickles to its settings, so
    each host finds the table itself."""

    def __init__(self, poll: float = POLL_SECONDS, renew: float = RENEW_SECONDS,
                 unreachable: float = UNREACHABLE_SECONDS, call: float = CALL_SECONDS):
        self.poll, self.renew, self.unreachable, self.call = poll, renew, unreachable, call
        self.down_until = 0.0  # this process found the table unreachable: no lease until then

    def __reduce__(self):
        return ClusterLease, (self.poll, self.renew, self.unreachable, self.call)

    @contextlib.contextmanager
    def held(self, name: str, done: Callable[[], bool]) -> Iterator[None]:
        """Hold ``name`` for the body, or run the body at once when ``done()`` (the model
        is in the cache) or when the table stays unreachable."""
        table, holder = self._wait(name, done)
        if table is None:
            yield
            return
        stop = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(table, name, holder, stop), daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join(timeout=self.call)
            with contextlib.suppress(RayError, GetTimeoutError):
                ray.get(table.release.remote(name, holder), timeout=self.call)

    def _wait(self, name: str, done: Callable[[], bool]):
        """``(table, holder)`` once ``name`` is granted, or ``(None, None)``: the model is
        stored, or the table is unreachable (then warned about, once per outage)."""
        holder = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        reached = time.monotonic()
        while True:
            if time.monotonic() < self.down_until:
                return None, None
            try:
                if done():
                    return None, None
                table = ray.get_actor(NAME, namespace=NAMESPACE)
                if ray.get(table.acquire.remote(name, holder), timeout=self.unreachable):
                    return table, holder
                reached = time.monotonic()
            except (RayError, GetTimeoutError, ValueError, OSError) as exc:  # ValueError: no such actor;
                if time.monotonic() - reached > self.unreachable:          # OSError: done() on a flaky store
                    self.down_until = time.monotonic() + self.unreachable
                    warnings.warn(f"model-cache lease table unreachable for {self.unreachable:.0f} s ({exc}); "
                                  f"training {name} without a lease", RuntimeWarning, stacklevel=4)
                    return None, None
            time.sleep(self.poll)

    def _renew(self, table, name: str, holder: str, stop: threading.Event) -> None:
        while not stop.wait(self.renew):
            try:
                kept = ray.get(table.renew.remote(name, holder), timeout=self.call)
            except (RayError, GetTimeoutError):
                continue
            if not kept:
                warnings.warn(f"model-cache lease on {name} lapsed while training it; another node may train "
                              "it too (the cache keeps the first model stored)", RuntimeWarning, stacklevel=2)
                return
