"""Starting or joining Ray, quietly and safely by default.

``connect`` joins the cluster at ``address`` (or ``RAY_ADDRESS``) or starts a local Ray:
no dashboard unless asked, usage statistics off, token authentication off for a local
Ray unless the environment says otherwise (``RAY_AUTH_MODE``), an object store of
``object_store_mb`` (records are small; models never travel through it), worker output
kept out of the terminal. The run's log (``_logs/run.log`` in the run folder) names
Ray's session folder; when the run started that Ray itself, the workers' (actors')
non-empty output is copied to ``_logs/ray/`` before it shuts down. :func:`ray_session`
is the one place that does all of it around a run or a sweep.

Stdout carries only what a command promises (its JSON, its summary and paths), so inside
a session the driver's ``sys.stdout`` is the run log (:class:`LogStream`): Ray prints
the raylet's messages (``(raylet) ... killed by ray.kill``, a dead worker) from a
background thread on ``sys.stdout`` whatever ``log_to_driver`` says, and Tune's output
engine prints its "Configuration for experiment" box and TensorBoard hint with
``print`` even at ``verbose=0``. Both land in ``_logs/run.log``, prefixed ``stdout:``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import threading
from pathlib import Path

import ray

from harness.distributed.experiment import RaySettings

LOG = logging.getLogger("tru")


def connect(settings: RaySettings, address: str | None = None) -> bool:
    """Start or join Ray; ``True`` when this call started it (the caller shuts it down)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs = {"include_dashboard": settings.dashboard, "log_to_driver": False, "logging_level": logging.WARNING}
    if address is None:
        kwargs |= {"num_cpus": settings.num_cpus, "object_store_memory": settings.object_store_mb * 2**20}
    ray.init(address=address, **kwargs)
    LOG.info("ray %s: %s; session logs in %s", "joined" if address else "started", ray.cluster_resources(),
             session_dir())
    return True


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
def ray_session(settings: RaySettings, address: str | None, out: Path):
    """The ``with`` block of a run or a sweep writing into ``out``: the ``tru`` log goes to
    ``out/_logs/run.log``, and so does what the driver prints on stdout meanwhile (Ray's
    and Tune's lines, the module docstring); Ray is joined or started (:func:`connect`); on
    leaving, a Ray this block started keeps its workers' output in ``out/_logs/ray/`` and
    shuts down (the raylet's last messages still reach the log, not the terminal)."""
    with logging_to(out / "_logs"):
        stream = LogStream()
        with contextlib.redirect_stdout(stream):
            started = connect(settings, address)
            try:
                yield
            finally:
                if started:
                    keep_worker_logs(out / "_logs" / "ray")
                    ray.shutdown()
                stream.flush()
