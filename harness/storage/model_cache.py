"""The model cache: trained models (and shard-set measurements) on a location, which is
a local folder or a URI (:mod:`harness.storage.locations`).

A model is stored as one whole file ``<name>`` (``torch.save`` of ``{"format", "state",
"meta"}``, loaded with ``weights_only=True``), written by :func:`write_whole`, so a reader
sees all of it or nothing. Its name holds the hash of everything the model depends on
(:func:`harness.protocol.models.train_backbone`), so a file, once written, never changes.

**On a URI** (an object store or a shared mount, one cache for a whole cluster) each
node keeps a copy of what it loaded or saved in its own folder
(:func:`harness.storage.locations.node_folder`): a model is downloaded once per node.
:meth:`ModelCache.save` writes the URI first (the copy every node reads), then the node's
copy. Node copies are not evicted.

**One trainer per model** (:meth:`ModelCache.turn`): the processes of one node take turns
through a file lock in the node folder; with a *lease* (a cluster-wide lock,
:mod:`harness.distributed.leases`, given where the cache is a URI on a Ray cluster)
processes of different nodes take turns too, so a model is trained once per cluster, not
once per node. Where the lease is lost (its table unreachable, a renewal late) two nodes
may both train a model; their bytes need not agree (training is not bit-reproducible
across machines), so :meth:`ModelCache.save` keeps the file already at the URI rather than
replacing it: every later load, on every node, reads the first trainer's model. Only the
second trainer's own job used its own model.

Node copies are a convenience: one that cannot be written (a full ``$TMPDIR``) is skipped
with a warning, and a stored file that cannot be read as a model (a copy cut short outside
the harness) counts as missing, so the model is trained again.
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import warnings
from pathlib import Path
from typing import Callable, Iterator, Protocol

import torch
from filelock import FileLock

from harness.storage.locations import filesystem, is_uri, join, node_folder, normalised, read_bytes, write_whole

#: the layout of a stored model; part of the model key, so a new layout never reads an old file
CHECKPOINT_FORMAT = 1


class Lease(Protocol):
    """A cluster-wide turn at a name (:class:`harness.distributed.leases.ClusterLease`)."""

    def held(self, name: str, done: Callable[[], bool]) -> contextlib.AbstractContextManager: ...


class ModelCache:
    """Models and small JSON records at ``location`` (module docstring)."""

    def __init__(self, location: str | Path, lease: Lease | None = None):
        self.location = normalised(location)
        self.fs, self.root = filesystem(self.location)
        self.uri = is_uri(self.location)
        self.node = node_folder("models", self.location) if self.uri else Path(self.root)
        self.lease = lease

    def __reduce__(self):  # a filesystem object need not pickle; the location does
        return ModelCache, (self.location, self.lease)

    def __repr__(self) -> str:
        return f"ModelCache({self.location!r})"

    @contextlib.contextmanager
    def turn(self, name: str) -> Iterator[None]:
        """The exclusive right to train model ``name`` (module docstring). With a lease, a
        waiter stops waiting once the model is in the cache."""
        self.node.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.node / f"{name}.lock")):
            if self.lease is None:
                yield
            else:
                with self.lease.held(f"{self.location}/{name}", lambda: self.has(name)):
                    yield

    def has(self, name: str) -> bool:
        return (self.node / name).is_file() or self.fs.get_file_info(join(self.fs, self.root, name)).is_file

    def load(self, name: str) -> tuple[dict, dict] | None:
        """``(state, meta)`` of model ``name``, or None when the cache lacks it (or holds a
        file that is not a model); a URI's file is copied to this node first."""
        local = self.node / name
        if self.uri and local.is_file():
            blob = _model(local.read_bytes(), str(local))
            if blob is not None:
                return blob
        data = read_bytes(self.fs, join(self.fs, self.root, name))
        blob = None if data is None else _model(data, join(self.fs, self.root, name))
        if blob is not None and self.uri:
            self._copy_to_node(name, data)
        return blob

    def save(self, name: str, state: dict, meta: dict) -> None:
        """Store model ``name``: at the location, then (a URI) in this node's copy. On a URI
        a model another node stored first is kept, and copied here instead (module docstring)."""
        buffer = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, "state": state, "meta": json.dumps(meta)}, buffer)
        data = buffer.getvalue()
        path = join(self.fs, self.root, name)
        if self.uri:
            stored = read_bytes(self.fs, path)
            if stored is not None and _model(stored, path) is not None:
                self._copy_to_node(name, stored)
                return
        write_whole(self.fs, path, data)
        if self.uri:
            self._copy_to_node(name, data)

    def _copy_to_node(self, name: str, data: bytes) -> None:
        try:
            write_whole(*filesystem(self.node / name), data)
        except OSError as exc:
            warnings.warn(f"model cache {self.location}: no node copy of {name} in {self.node} ({exc})",
                          RuntimeWarning, stacklevel=3)

    def read_json(self, name: str) -> dict | None:
        """The JSON record ``name`` at the location (None: none), never a node copy (a record
        may be replaced by a newer measurement)."""
        data = read_bytes(self.fs, join(self.fs, self.root, name))
        return None if data is None else json.loads(data)

    def write_json(self, name: str, value: dict) -> None:
        write_whole(self.fs, join(self.fs, self.root, name), json.dumps(value).encode())


def _model(data: bytes, where: str) -> tuple[dict, dict] | None:
    """``(state, meta)`` of a stored model's bytes, or None (with a warning) when they are
    not one."""
    try:
        blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        return blob["state"], json.loads(blob["meta"])
    except (RuntimeError, EOFError, KeyError, TypeError, ValueError, pickle.UnpicklingError) as exc:
        warnings.warn(f"{where}: not a readable model ({type(exc).__name__}); it is trained again",
                      RuntimeWarning, stacklevel=3)
        return None


def as_cache(value: "ModelCache | str | Path | None") -> ModelCache | None:
    """A :class:`ModelCache` of ``value`` (a location, a cache, or None: no caching)."""
    return value if value is None or isinstance(value, ModelCache) else ModelCache(value)
