"""Locations: a local folder or a URI, and the few operations the harness needs on them.

A *location* is a local path (relative ones are taken from the working directory) or a
URI that ``pyarrow.fs`` opens (``s3://``, ``gs://``, ``hdfs://``, ``abfs://``,
``file:///abs``) or, failing that, one ``fsspec`` opens (its other protocols, through
``pyarrow.fs.FSSpecHandler``). The results store and the model cache both live on one.

Whole files only: :func:`write_whole` writes a file so that a reader sees either nothing
or all of it (on a local filesystem a temporary name and a rename; on an object store an
object appears whole when its upload closes, so it is written once under its final
name). Every problem a user can cause (a URI no library opens, a relative ``file://``
path, a location that cannot be written) is a one-line :class:`UserError`.
"""

from __future__ import annotations

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
    """``location`` as the harness keeps it: a local path made absolute, a URI unchanged."""
    return str(location) if is_uri(location) else str(Path(location).absolute())


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
    """``location`` as one safe folder name (``s3://b/models`` -> ``s3-b-models``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(location)).strip("-")


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
    """Write ``data`` to ``path`` so that no reader sees part of it (module docstring);
    a failed write leaves no temporary file behind."""
    parent = posixpath.dirname(path) if not isinstance(fs, pafs.LocalFileSystem) else str(Path(path).parent)
    fs.create_dir(parent, recursive=True)
    if not isinstance(fs, pafs.LocalFileSystem):
        with fs.open_output_stream(path) as handle:
            handle.write(data)
        return
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{Path(path).name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    """Write and delete a small probe file at ``location``, so that a location the harness
    cannot write is a one-line :class:`UserError` (naming ``what``, e.g. ``cache_dir``)
    before any work, not a failure hours later."""
    fs, root = filesystem(location)
    probe = join(fs, root, f".probe-{uuid.uuid4().hex}")
    try:
        write_whole(fs, probe, b"probe")
        fs.delete_file(probe)
    except (OSError, pa.ArrowException) as exc:
        raise UserError(f"{what} {location}: cannot be written ({exc})") from None
