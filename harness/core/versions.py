"""Code versions derived from the sources they cover, for cache and resume keys.

A key that embeds a hand-kept version string goes stale: after a change to a backbone
or to training, a cached model or a stored record would still match. Instead a version
is the package version plus a hash of the source files of the modules a model or a
record depends on (a package covers every ``.py`` file below it), so a change to those
sources changes the keys, and a change elsewhere (a new backbone, the runner, a report)
does not throw away cached models or stored records.

* a trained model: :data:`MODEL_SOURCES` and the modules of its backbone class and of
  the backbone classes it derives from;
* a record: the model's sources, :data:`RECORD_SOURCES` and the modules of its method
  class and its bases (TRU: ``methods.tru``, ``methods.reverse``, ``methods.base``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

#: what every trained model depends on: the backbone contract and blocks, seeding, and the
#: training loop with its early stopping (evaluation) and model building (the stored
#: layout is :data:`harness.storage.model_cache.CHECKPOINT_FORMAT`, part of the model key)
MODEL_SOURCES = ("backbones.base", "backbones.blocks", "harness.core", "harness.protocol.training",
                 "harness.protocol.evaluation", "harness.protocol.models")
#: what every record depends on beyond its model and method: data and regimes, the
#: method contract and the whole protocol (measures, audit, the record itself)
RECORD_SOURCES = ("harness.data", "methods.base", "harness.protocol")


def package_version() -> str:
    try:
        return version("tru-harness")
    except PackageNotFoundError:  # run from a source tree that was not installed
        return "0+unknown"


def source_files(module: str) -> list[tuple[str, Path]]:
    """``(name, path)`` of each ``.py`` file of ``module`` (a package: every file below it),
    ``name`` being the path relative to the package's parent (stable across installs)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ValueError, ModuleNotFoundError):  # __main__, or a module loaded without a spec
        spec = None
    if spec is None or spec.origin is None:
        loaded = getattr(sys.modules.get(module), "__file__", None)  # a script's or notebook's own classes
        if loaded is None:
            raise ModuleNotFoundError(f"no module '{module}'")
        return [(module, Path(loaded))]
    if spec.submodule_search_locations:  # a package
        folder = Path(spec.origin).parent
        files = sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts and p.is_file())
        return [(f"{module}/{p.relative_to(folder).as_posix()}", p) for p in files]
    return [(module, Path(spec.origin))]


@functools.cache
def code_version(modules: tuple[str, ...]) -> str:
    """``"<package version>+<12 hex digits>"``: SHA-256 over the names and contents of the
    source files of ``modules`` (computed once per process and tuple)."""
    digest = hashlib.sha256()
    files = dict(pair for module in modules for pair in source_files(module))
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].read_bytes() + b"\0")
    return f"{package_version()}+{digest.hexdigest()[:12]}"


def modules_of(cls: type, base: type) -> tuple[str, ...]:
    """The modules defining ``cls`` and each of its ancestors that derive from ``base``."""
    return tuple(sorted({c.__module__ for c in cls.__mro__ if issubclass(c, base)}))


def model_code_version(backbone_modules: tuple[str, ...]) -> str:
    """The code version in the cache key of a model of a backbone defined in ``backbone_modules``."""
    return code_version(tuple(sorted(set(MODEL_SOURCES + backbone_modules))))


def record_code_version(backbone_modules: tuple[str, ...], method_modules: tuple[str, ...]) -> str:
    """The code version in the run key and the record of one method on one backbone."""
    return code_version(tuple(sorted(set(MODEL_SOURCES + RECORD_SOURCES + backbone_modules + method_modules))))
