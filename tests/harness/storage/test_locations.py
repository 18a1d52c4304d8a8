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
    assert normalised("gs://b/models/") == "gs://b/models" and normalised("file:///") == "file:///"
    name = folder_name("s3://b/models")
    assert name.startswith("s3-b-models-") and len(name) == len("s3-b-models-") + 8
    # one location, one folder; another location that reads the same gets another folder
    assert folder_name("s3://b/models/") == name != folder_name("s3://b-models")
    assert node_folder("models", "s3://b/models").parts[-3:] == ("tru-harness", "models", name)


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
    check_writable(tmp_path / "new" / "models", "cache_dir")  # a local folder: checked, nothing made
    assert os.listdir(tmp_path) == []
    check_writable(memory_uri(), "cache_dir")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match=rf"^cache_dir {blocker}/models: {blocker} is a file, not a folder$"):
        check_writable(blocker / "models", "cache_dir")
    with pytest.raises(UserError, match=r"^cache_dir nosuchscheme://x: not a folder nor a URI"):
        check_writable("nosuchscheme://x", "cache_dir")


class Recording(pafs.FSSpecHandler):
    """An in-memory store that records the paths written and can fail its moves."""

    def __init__(self, fs, fail_moves=False):
        super().__init__(fs)
        self.opened, self.fail_moves = [], fail_moves

    def open_output_stream(self, path, metadata):
        self.opened.append(path)
        return super().open_output_stream(path, metadata)

    def move(self, src, dest):
        if self.fail_moves:
            raise OSError("upload failed")
        super().move(src, dest)


def test_an_object_store_write_goes_through_a_hidden_name_and_leaves_none():
    import fsspec

    handler = Recording(fsspec.filesystem("memory"))
    fs, root = pafs.PyFileSystem(handler), f"/t-{uuid.uuid4().hex}"
    write_whole(fs, f"{root}/m.pt", b"whole")
    assert handler.opened[0].split("/")[-1].startswith(".m.pt.") and read_bytes(fs, f"{root}/m.pt") == b"whole"
    assert [i.base_name for i in fs.get_file_info(pafs.FileSelector(root))] == ["m.pt"]
    handler.fail_moves = True
    with pytest.raises(OSError):
        write_whole(fs, f"{root}/n.pt", b"cut")
    assert [i.base_name for i in fs.get_file_info(pafs.FileSelector(root))] == ["m.pt"]  # no n.pt, no temporary
