"""Starting or joining Ray, quietly and safely by default, with what the workers need.

``connect`` joins the cluster at ``address`` (or ``RAY_ADDRESS``) or starts a local Ray:
no dashboard unless asked, usage statistics off, token authentication off for a local
Ray unless the environment says otherwise (``RAY_AUTH_MODE``), an object store of
``object_store_mb`` (records are small; models never travel through it), worker output
kept out of the terminal. The run's log (``_logs/run.log`` in the run folder) names
Ray's session folder; when the run started that Ray itself, the workers' (actors')
non-empty output is copied to ``_logs/ray/`` before it shuts down. :func:`ray_session`
is the one place that does all of it around a run or a sweep.

**What travels to the workers** (a worker node of a real cluster has none of the
driver's files): datasets go through the object store
(:func:`harness.distributed.host.ship_datasets`); the experiment's ``plugins`` go
through Ray's ``runtime_env`` (``py_modules``: the top-level package or module of each,
as Ray's "Environment Dependencies" guide does it), and with ``ray.ship_code = true`` so
do the project's own packages and its distribution metadata (so a worker without the
project installed reports the same package version in its code versions). A joined
cluster is then checked (:func:`check_nodes`): each node runs :func:`environment` and the
first difference from the driver (a library version, or the project's sources) is a
one-line :class:`UserError` before any actor starts, not a pickling traceback later.
``constraints.txt`` pins the versions the suite was tested with (``make`` installs from
it; a cluster's nodes or ``runtime_env`` can use it).

Stdout carries only what a command promises (its JSON, its summary and paths), so inside
a session the driver's ``sys.stdout`` is the run log (:class:`LogStream`): Ray prints
the raylet's messages (``(raylet) ... killed by ray.kill``, a dead worker) from a
background thread on ``sys.stdout`` whatever ``log_to_driver`` says, and Tune's output
engine prints its "Configuration for experiment" box and TensorBoard hint with
``print`` even at ``verbose=0``. Both land in ``_logs/run.log``, prefixed ``stdout:``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import logging
import os
import re
import shutil
import sys
import threading
import time
from pathlib import Path

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from harness.core.errors import UserError
from harness.core.versions import code_version
from harness.distributed.experiment import Experiment, RaySettings

#: the project's own packages (shipped with ``ray.ship_code``; their sources are compared across nodes)
PACKAGES = ("backbones", "harness", "methods", "reports", "tuning")
DISTRIBUTION = "tru-harness"
#: how long a node may take to set up its runtime environment and answer :func:`environment`
CHECK_TIMEOUT = 300.0

LOG = logging.getLogger("tru")


def connect(settings: RaySettings, address: str | None = None, env: dict | None = None,
            plugins: list[str] = ()) -> bool:
    """Start or join Ray with the runtime environment ``env`` (:func:`runtime_env`);
    ``True`` when this call started it (the caller shuts it down). A joined cluster is
    checked (:func:`check_nodes`, importing ``plugins`` on each node) before this returns;
    Ray's own refusals (a Ray or Python version the cluster does not run, a job's
    ``runtime_env`` that cannot take ours) are one line."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs = {"include_dashboard": settings.dashboard, "log_to_driver": False, "logging_level": logging.WARNING,
              "runtime_env": env or {}}
    if address is None:
        kwargs |= {"num_cpus": settings.num_cpus, "object_store_memory": settings.object_store_mb * 2**20}
    try:
        ray.init(address=address, **kwargs)
    except (RuntimeError, ValueError) as exc:  # e.g. "Version mismatch: ...", a py_modules conflict
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise UserError(f"ray at {address or 'local'}: {first}") from None
    LOG.info("ray %s: %s; session logs in %s", "joined" if address else "started", ray.cluster_resources(),
             session_dir())
    if address is not None:
        try:
            check_nodes(plugins=list(plugins))
        except BaseException:
            ray.shutdown()
            raise
    return True


def runtime_env(experiment: Experiment) -> dict:
    """Ray's ``runtime_env`` of the job: ``py_modules`` with the top-level package (or
    single-file module) of each plugin and, with ``ray.ship_code``, the project's packages
    and its ``.dist-info`` folder (found on ``sys.path`` by ``importlib.metadata``). A
    namespace package, which Ray cannot ship, is a one-line error naming the plugin."""
    tops = dict.fromkeys(module.split(".")[0] for module in experiment.plugins)
    if experiment.ray.ship_code:
        tops |= dict.fromkeys(PACKAGES)
    modules: list = [importlib.import_module(name) for name in tops]
    for module in modules:
        if len(getattr(module, "__path__", [])) > 1:
            raise UserError(f"plugins: '{module.__name__}' is a namespace package (in {len(module.__path__)} "
                            "folders), which Ray's runtime_env cannot ship; give it an __init__.py")
    if experiment.ray.ship_code:
        modules.append(_metadata_folder())
    return {"py_modules": modules} if modules else {}


def _metadata_folder() -> str:
    """The ``.dist-info`` folder of the installed project (its version for code versions)."""
    try:
        distribution = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise UserError(f"ray.ship_code: the project is not installed here (no {DISTRIBUTION} distribution); "
                        "install it with `make` or `pip install -e .`") from None
    return str(distribution._path)  # type: ignore[attr-defined]  (a PathDistribution's folder)


def environment(plugins: list[str] = ()) -> dict[str, str]:
    """What this process runs, as ``{name: version}``: Python (major.minor: Ray itself
    refuses other patch levels), each distribution the project requires
    (``importlib.metadata.requires``; without a local label, so a CPU and a CUDA build of
    one torch release agree), the distribution of each installed entry-point plugin, and
    ``project sources`` (the code version of :data:`PACKAGES`,
    :func:`harness.core.versions.code_version`). Each of ``plugins`` is imported first: one
    that fails is ``plugin NAME: cannot import (...)``."""
    found = {"python": ".".join(sys.version.split()[0].split(".")[:2])}
    for module in plugins:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001  (reported, in one line, by the driver)
            found[f"plugin {module}"] = f"cannot import ({type(exc).__name__}: {exc})"
    try:
        requirements = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:  # a source tree that was not installed
        requirements = []
    names = [re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0] for r in requirements if "extra ==" not in r]
    names += sorted({ep.dist.name for group in ("tru.methods", "tru.backbones")
                     for ep in importlib.metadata.entry_points(group=group) if ep.dist is not None})
    for name in names:
        try:
            found[name] = importlib.metadata.version(name).split("+")[0]  # 2.13.0+cpu and +cu128 builds agree
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["project sources"] = code_version(PACKAGES)
    return found


def _probe(plugins: list[str]) -> dict[str, str]:
    """:func:`environment` as the node computes it (looked up there, not pickled from here)."""
    return environment(plugins)


def check_nodes(timeout: float = CHECK_TIMEOUT, plugins: list[str] = ()) -> None:
    """Run :func:`environment` on every alive node of the cluster (in the job's runtime
    environment, importing ``plugins``), all at once, and compare each with the driver's;
    the first node that differs, or that cannot run the project at all, is a one-line
    :class:`UserError`. (Nodes that join later are not checked.)"""
    ours = environment(list(plugins))
    probe = ray.remote(num_cpus=0)(_probe)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = {probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
        list(plugins)): n for n in nodes}
    fix = ("install the tested versions there (pip install -c constraints.txt -e .) or set ray.ship_code = true "
           "for the project's own code")
    deadline = time.monotonic() + timeout
    for ref, node in refs.items():
        where = f"node {node.get('NodeManagerAddress', '?')} ({node['NodeID'][:8]})"
        try:
            theirs = ray.get(ref, timeout=max(1.0, deadline - time.monotonic()))
        except ray.exceptions.GetTimeoutError:
            raise UserError(f"{where}: did not answer within {timeout:.0f} s (is its runtime environment failing? "
                            "see Ray's runtime_env logs there)") from None
        except (ray.exceptions.RayError, ImportError) as exc:
            last = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise UserError(f"{where}: cannot run the project ({last}); {fix}") from None
        for name in list(ours) + [n for n in theirs if n not in ours]:
            if theirs.get(name) != ours.get(name):
                raise UserError(f"{where}: {name} {theirs.get(name, 'missing')}, the driver has "
                                f"{ours.get(name, 'none')}; {fix}")


def session_dir() -> str:
    """Ray's session folder of this driver (its ``logs/`` hold the actors' output)."""
    try:
        from ray._private import worker  # a private module: imported here so its absence costs only this path

        return worker._global_node.get_session_dir_path()
    except Exception:  # a private API; the path is informative only
        return "unknown"


def keep_worker_logs(folder: Path) -> int:
    """Copy the non-empty output of this session's Ray workers (actors included) into
    ``folder`` (call before shutting down a local Ray); returns how many files."""
    logs = Path(session_dir()) / "logs"
    if not logs.is_dir():
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    kept = 0
    for path in logs.glob("worker-*"):
        if path.suffix in (".out", ".err") and path.stat().st_size > 0:
            shutil.copyfile(path, folder / path.name)
            kept += 1
    return kept


@contextlib.contextmanager
def logging_to(folder: Path):
    """Send the ``tru`` logger to ``folder/run.log`` (appending) for the ``with`` block;
    nested blocks on the same folder (a sweep's test re-evaluation) share one handler,
    so no line is written twice."""
    folder.mkdir(parents=True, exist_ok=True)
    path = str((folder / "run.log").resolve())
    if any(getattr(h, "baseFilename", None) == path for h in LOG.handlers):
        yield
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    try:
        yield
    finally:
        LOG.removeHandler(handler)
        handler.close()


class LogStream:
    """A write-only text stream that sends each complete line to the ``tru`` logger
    (``stdout: line``, colour codes stripped); what the driver prints on ``sys.stdout``
    during a session, from any thread."""

    _ANSI = re.compile(r"\x1b\[[0-9;]*m")

    def __init__(self):
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            lines = (self._pending + text).split("\n")
            self._pending = lines.pop()
        for line in lines:
            self._emit(line)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            line, self._pending = self._pending, ""
        self._emit(line)

    def _emit(self, line: str) -> None:
        line = self._ANSI.sub("", line).rstrip()
        if line.strip():
            LOG.info("stdout: %s", line)

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def ray_session(experiment: Experiment, address: str | None, out: Path):
    """The ``with`` block of a run or a sweep writing into ``out``: the ``tru`` log goes to
    ``out/_logs/run.log``, and so does what the driver prints on stdout meanwhile (Ray's
    and Tune's lines, the module docstring); Ray is joined or started (:func:`connect`); on
    leaving, a Ray this block started keeps its workers' output in ``out/_logs/ray/`` and
    shuts down (the raylet's last messages still reach the log, not the terminal)."""
    with logging_to(out / "_logs"):
        stream = LogStream()
        with contextlib.redirect_stdout(stream):
            started = connect(experiment.ray, address, runtime_env(experiment), experiment.plugins)
            try:
                yield
            finally:
                if started:
                    keep_worker_logs(out / "_logs" / "ray")
                    ray.shutdown()
                stream.flush()
