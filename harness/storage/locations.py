"""Locations: a local folder or a URI, and the few operations the harness needs on them.

A *location* is a local path (relative ones are taken from the working directory) or a
URI that ``pyarrow.fs`` opens (``s3://``, ``gs://``, ``hdfs://``, ``abfs://``,
``file:///abs``) or, failing that, one ``fsspec`` opens (its other protocols, through
``pyarrow.fs.FSSpecHandler``). The results store and the model cache both live on one.

Whole files only: :func:`write_whole` writes a file so that a reader sees either nothing
or all of it: under a hidden temporary name beside it, then moved to its name (a rename on
a local filesystem or HDFS; on an object store a copy, and an object appears whole).
Every problem a user can cause (a URI no library opens, a relative ``file://`` path, a
location that cannot be written) is a one-line :class:`UserError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
import tempfile
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from harness.core.errors import UserError


def is_uri(location: str | Path) -> bool:
    """Whether ``location`` is a URI (``scheme://...``) rather than a local path."""
    return "://" in str(location)


def normalised(location: str | Path) -> str:
    """``location`` as the harness keeps it: a local path made absolute, a URI without a
    trailing ``/`` (``s3://b/models/`` and ``s3://b/models`` are one location)."""
    if not is_uri(location):
        return str(Path(location).absolute())
    text = str(location)
    return text.rstrip("/") if not text.endswith(":///") else text


def filesystem(location: str | Path) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, path in it)`` of a local folder (made absolute) or a URI; a URI
    neither pyarrow nor fsspec opens, or a relative ``file://`` path, is a one-line
    :class:`UserError`."""
    text = str(location)
    if not is_uri(text):
        return pafs.LocalFileSystem(), str(Path(text).absolute())
    if text.startswith("file://") and not text.startswith("file:///"):
        raise UserError(f"{text}: a file:// URI needs an absolute path (file:///...)")
    try:
        return pafs.FileSystem.from_uri(text)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, OSError) as arrow_error:
        try:
            import fsspec

            fs, path = fsspec.core.url_to_fs(text)
        except (ImportError, ValueError, OSError) as exc:
            raise UserError(f"{text}: not a folder nor a URI pyarrow or fsspec can open ({arrow_error}; {exc})") from None
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def folder_name(location: str | Path) -> str:
    """``location`` as one safe folder name, readable and distinct: ``s3://b/models`` ->
    ``s3-b-models-<8 hex digits of its SHA-256>`` (``s3://b-models`` has another)."""
    text = normalised(location)
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '-', text).strip('-')}-{digest}"


def node_folder(kind: str, location: str | Path) -> Path:
    """This node's own folder for copies of what lives at ``location``:
    ``$TMPDIR/tru-harness/<kind>/<folder_name(location)>`` (every process of a node finds
    the same one)."""
    return Path(tempfile.gettempdir()) / "tru-harness" / kind / folder_name(location)


def join(fs: pafs.FileSystem, root: str, name: str) -> str:
    """The path of ``name`` below ``root`` in ``fs``."""
    return str(Path(root) / name) if isinstance(fs, pafs.LocalFileSystem) else posixpath.join(root, name)


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type == pafs.FileType.File


def write_whole(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that no reader sees part of it (module docstring): a
    hidden temporary file beside it, moved into place; a failed write leaves no temporary
    file behind. A local file gets the umask's permissions (``mkstemp`` alone gives 0600)."""
    local = isinstance(fs, pafs.LocalFileSystem)
    parent = str(Path(path).parent) if local else posixpath.dirname(path)
    fs.create_dir(parent, recursive=True)
    if not local:
        tmp = posixpath.join(parent, f".{posixpath.basename(path)}.{uuid.uuid4().hex}.tmp")
        try:
            with fs.open_output_stream(tmp) as handle:
                handle.write(data)
            fs.move(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError, pa.ArrowException):
                fs.delete_file(tmp)
            raise
        return
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{Path(path).name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, default_mode(0o666))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def default_mode(base: int) -> int:
    """``base`` (``0o666`` a file, ``0o777`` a folder) less the process's umask: the mode
    a file or folder made in the usual way would get (``mkstemp`` and ``mkdtemp`` give 0600
    and 0700 instead)."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def read_bytes(fs: pafs.FileSystem, path: str) -> bytes | None:
    """The contents of ``path``, or None when there is no such file."""
    try:
        with fs.open_input_stream(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError:
        if not exists(fs, path):
            return None
        raise


def check_writable(location: str | Path, what: str) -> None:
    """A local folder: it, or the nearest folder above it that exists, is a writable folder.
    A URI: write a small probe file at ``location`` (and delete it where deleting is allowed: the
    harness never deletes), so that a location the harness cannot write is a one-line
    :class:`UserError` naming ``what`` (e.g. ``cache_dir``) before any work, not a failure
    hours later. Any error of the filesystem's library counts (fsspec's backends raise their
    own types, e.g. for missing credentials)."""
    if not is_uri(location):  # no probe, so nothing is made before the run starts
        path = Path(location).absolute()
        ancestor = next(p for p in (path, *path.parents) if p.exists())
        if not ancestor.is_dir():
            raise UserError(f"{what} {location}: {ancestor} is a file, not a folder")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise UserError(f"{what} {location}: cannot be written ({ancestor} is not writable)")
        return
    try:
        fs, root = filesystem(location)
    except UserError as exc:
        raise UserError(f"{what} {exc}") from None
    probe = join(fs, root, f".probe-{uuid.uuid4().hex}")
    try:
        write_whole(fs, probe, b"probe")
    except Exception as exc:  # noqa: BLE001 - whatever the backend raises is the user's location's problem
        raise UserError(f"{what} {location}: cannot be written ({type(exc).__name__}: {exc})") from None
    with contextlib.suppress(Exception):
        fs.delete_file(probe)
