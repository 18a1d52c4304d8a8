"""Code versions derived from the sources they cover, for cache and resume keys.

A key that embeds a hand-kept version string goes stale: after a change to a backbone
or to training, a cached model or a stored record would still match. Instead a version
is the package version plus a hash of the source files of the named modules (a package
covers every ``.py`` file below it), so any change to those sources changes the keys.
"""

from __future__ import annotations

import functools
import hashlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from harness.core.paths import PROJECT as ROOT


#: what a trained model depends on: the backbones and their blocks, seeding, and the
#: training loop with its early stopping (evaluation) and model building
MODEL_SOURCES = ("backbones", "harness.core", "harness.protocol.training", "harness.protocol.evaluation",
                 "harness.protocol.models", "harness.protocol.checkpoints")
#: what a result record depends on: the model, the data and regimes, the methods and
#: the whole protocol (measures, audit, record)
RECORD_SOURCES = MODEL_SOURCES + ("harness.data", "methods", "harness.protocol")


def package_version() -> str:
    try:
        return version("tru-harness")
    except PackageNotFoundError:  # run from a source tree that was not installed
        return "0+unknown"


def source_files(modules: tuple[str, ...], root: Path = ROOT) -> list[Path]:
    """The ``.py`` files of ``modules`` (dotted names of packages or modules) under ``root``,
    sorted and without duplicates."""
    files: set[Path] = set()
    for module in modules:
        path = root.joinpath(*module.split("."))
        if path.is_dir():
            files.update(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
        elif path.with_suffix(".py").is_file():
            files.add(path.with_suffix(".py"))
        else:
            raise FileNotFoundError(f"no package or module '{module}' under {root}")
    return sorted(files)


def source_hash(modules: tuple[str, ...], root: Path = ROOT) -> str:
    """SHA-256 (12 hex digits) over the relative paths and contents of :func:`source_files`."""
    digest = hashlib.sha256()
    for path in source_files(modules, root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


@functools.cache
def code_version(modules: tuple[str, ...]) -> str:
    """``"<package version>+<source hash>"`` of ``modules`` (computed once per process)."""
    return f"{package_version()}+{source_hash(modules)}"


def model_code_version() -> str:
    """The code version in every model-cache key."""
    return code_version(MODEL_SOURCES)


def record_code_version() -> str:
    """The code version in every run key and record."""
    return code_version(RECORD_SOURCES)
