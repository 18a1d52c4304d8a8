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
warns and trains without a lease: a lease only saves work (two trainers write the same
bytes under the same name), so being unable to reach it must not stop a run.
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
    """A cache's cluster-wide turn at a name (module docstring); pickles to nothing, so each
    host finds the table itself."""

    def __init__(self, poll: float = POLL_SECONDS, renew: float = RENEW_SECONDS,
                 unreachable: float = UNREACHABLE_SECONDS):
        self.poll, self.renew, self.unreachable = poll, renew, unreachable

    def __reduce__(self):
        return ClusterLease, (self.poll, self.renew, self.unreachable)

    @contextlib.contextmanager
    def held(self, name: str, done: Callable[[], bool]) -> Iterator[None]:
        """Hold ``name`` for the body, or run the body at once when ``done()`` (the model
        is in the cache) or when the table stays unreachable."""
        holder = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        reached = time.monotonic()
        while True:
            if done():
                yield
                return
            try:
                table = ray.get_actor(NAME, namespace=NAMESPACE)
                if ray.get(table.acquire.remote(name, holder), timeout=self.unreachable):
                    break
                reached = time.monotonic()
            except (RayError, GetTimeoutError, ValueError) as exc:  # ValueError: no such actor
                if time.monotonic() - reached > self.unreachable:
                    warnings.warn(f"model-cache lease table unreachable for {self.unreachable:.0f} s ({exc}); "
                                  f"training {name} without a lease", RuntimeWarning, stacklevel=3)
                    yield
                    return
            time.sleep(self.poll)
        stop = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(table, name, holder, stop), daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            with contextlib.suppress(RayError, GetTimeoutError):
                ray.get(table.release.remote(name, holder), timeout=self.unreachable)

    def _renew(self, table, name: str, holder: str, stop: threading.Event) -> None:
        while not stop.wait(self.renew):
            with contextlib.suppress(RayError, GetTimeoutError):
                ray.get(table.renew.remote(name, holder), timeout=self.unreachable)
