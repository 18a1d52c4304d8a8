import os
import uuid

import pyarrow.fs as pafs
import pytest

from harness.core.errors import UserError
from harness.storage.locations import (check_writable, filesystem, folder_name, is_uri, node_folder, normalised,
                                       read_bytes, write_whole)


def memory_uri() -> str:
    return f"memory://tests-{uuid.uuid4().hex}/folder"


def test_paths_and_uris_are_told_apart_and_normalised(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not is_uri("runs/x") and is_uri("s3://bucket/x") and is_uri("file:///tmp/x")
    assert normalised("runs/x") == str(tmp_path / "runs" / "x")
    assert normalised("gs://b/models") == "gs://b/models"
    assert folder_name("s3://b/models") == "s3-b-models"
    assert node_folder("models", "s3://b/models").parts[-3:] == ("tru-harness", "models", "s3-b-models")


def test_a_relative_file_uri_and_an_unknown_scheme_are_one_line_errors():
    with pytest.raises(UserError, match=r"^file://runs/x: a file:// URI needs an absolute path"):
        filesystem("file://runs/x")
    with pytest.raises(UserError, match=r"^nosuchscheme://x: not a folder nor a URI") as caught:
        filesystem("nosuchscheme://x")
    assert "\n" not in str(caught.value)


def test_write_whole_replaces_a_local_file_and_leaves_no_temporary(tmp_path):
    fs, root = filesystem(tmp_path / "a" / "b")
    path = f"{root}/f.bin"
    write_whole(fs, path, b"one")
    write_whole(fs, path, b"two")
    assert read_bytes(fs, path) == b"two" and os.listdir(tmp_path / "a" / "b") == ["f.bin"]


def test_a_failed_local_write_leaves_neither_the_file_nor_a_temporary(tmp_path, monkeypatch):
    fs, root = filesystem(tmp_path)

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_whole(fs, f"{root}/f.bin", b"data")
    assert os.listdir(tmp_path) == []


def test_an_object_store_is_written_once_under_its_final_name():
    fs, root = filesystem(memory_uri())
    assert not isinstance(fs, pafs.LocalFileSystem)
    write_whole(fs, f"{root}/sub/f.bin", b"data")
    assert read_bytes(fs, f"{root}/sub/f.bin") == b"data"
    assert [i.base_name for i in fs.get_file_info(pafs.FileSelector(f"{root}/sub"))] == ["f.bin"]
    assert read_bytes(fs, f"{root}/missing.bin") is None


def test_check_writable_names_what_cannot_be_written(tmp_path):
    check_writable(tmp_path / "new", "cache_dir")  # made, probed, left empty
    assert os.listdir(tmp_path / "new") == []
    check_writable(memory_uri(), "cache_dir")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match=rf"^cache_dir {blocker}/models: cannot be written"):
        check_writable(blocker / "models", "cache_dir")
