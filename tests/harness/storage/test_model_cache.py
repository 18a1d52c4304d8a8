import contextlib
import pickle
import tempfile
import uuid

import pytest
import torch

from harness.protocol.models import train_backbone
from harness.storage import model_cache
from harness.storage.locations import filesystem, read_bytes
from harness.storage.model_cache import ModelCache, as_cache

TRAINING = {"max_epochs": 2, "batch_size": 64}


def memory_uri() -> str:
    return f"memory://tests-{uuid.uuid4().hex}/models"


def test_a_local_cache_keeps_whole_files_in_its_folder(tmp_path):
    cache = ModelCache(tmp_path)
    assert cache.load("m.pt") is None and not cache.has("m.pt")
    cache.save("m.pt", {"w": torch.arange(3.0)}, {"best_epoch": 2})
    state, meta = ModelCache(tmp_path).load("m.pt")
    assert torch.equal(state["w"], torch.arange(3.0)) and meta == {"best_epoch": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_a_uri_cache_is_written_first_and_copied_to_each_node(tmp_path, monkeypatch):
    uri = memory_uri()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "node-a"))
    writer = ModelCache(uri)
    writer.save("m.pt", {"w": torch.ones(2)}, {"epochs": 1})
    fs, root = filesystem(uri)
    assert read_bytes(fs, f"{root}/m.pt") is not None  # the copy every node reads
    assert (writer.node / "m.pt").is_file() and str(writer.node).startswith(str(tmp_path / "node-a"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "node-b"))  # another node: no copy yet
    reader = ModelCache(uri)
    assert not (reader.node / "m.pt").exists() and reader.has("m.pt")
    state, meta = reader.load("m.pt")
    assert torch.equal(state["w"], torch.ones(2)) and meta == {"epochs": 1}
    assert (reader.node / "m.pt").read_bytes() == read_bytes(fs, f"{root}/m.pt")


def test_json_records_live_at_the_location_and_may_be_replaced(tmp_path):
    cache = ModelCache(memory_uri())
    assert cache.read_json("shard-sets/k.json") is None
    cache.write_json("shard-sets/k.json", {"wall_seconds": 1.0})
    cache.write_json("shard-sets/k.json", {"wall_seconds": 2.0})
    assert ModelCache(cache.location).read_json("shard-sets/k.json") == {"wall_seconds": 2.0}


def test_a_cache_pickles_to_its_location_and_lease(tmp_path):
    cache = pickle.loads(pickle.dumps(ModelCache(tmp_path, lease=None)))
    assert cache.location == str(tmp_path) and cache.lease is None
    assert as_cache(None) is None and as_cache(cache) is cache and as_cache(str(tmp_path)).location == str(tmp_path)


class RecordingLease:
    def __init__(self):
        self.names = []

    @contextlib.contextmanager
    def held(self, name, done):
        self.names.append((name, done()))
        yield


def test_a_turn_takes_the_lease_under_the_caches_location(tmp_path):
    lease = RecordingLease()
    cache = ModelCache(tmp_path, lease)
    with cache.turn("m.pt"):
        cache.save("m.pt", {}, {})
    with cache.turn("m.pt"):
        pass
    assert lease.names == [(f"{tmp_path}/m.pt", False), (f"{tmp_path}/m.pt", True)]


def test_train_backbone_uses_a_uri_cache_and_its_key_has_the_format(tiny, monkeypatch):
    uri = memory_uri()
    first = train_backbone(tiny, "lightgcn", 0, train_overrides=TRAINING, cache_dir=uri, progress=False)
    second = train_backbone(tiny, "lightgcn", 0, train_overrides=TRAINING, cache_dir=uri, progress=False)
    assert not first.cached and second.cached
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key])
    monkeypatch.setattr("harness.protocol.models.CHECKPOINT_FORMAT", model_cache.CHECKPOINT_FORMAT + 1)
    assert not train_backbone(tiny, "lightgcn", 0, train_overrides=TRAINING, cache_dir=uri, progress=False).cached


def test_a_file_that_is_not_a_model_counts_as_missing(tmp_path):
    (tmp_path / "m.pt").write_bytes(b"cut sho")  # e.g. a copy cut short outside the harness
    cache = ModelCache(tmp_path)
    with pytest.warns(RuntimeWarning, match="not a readable model"):
        assert cache.load("m.pt") is None
    cache.save("m.pt", {"w": torch.ones(1)}, {})  # trained again, and the file replaced
    assert torch.equal(cache.load("m.pt")[0]["w"], torch.ones(1))


def test_on_a_uri_the_first_model_stored_is_kept_on_every_node(tmp_path, monkeypatch):
    """Two nodes trained one model without a lease, to different bytes: the second save
    keeps the first model at the URI and copies it to its own node."""
    uri = memory_uri()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "node-a"))
    ModelCache(uri).save("m.pt", {"w": torch.zeros(2)}, {"by": "a"})
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "node-b"))
    second = ModelCache(uri)
    second.save("m.pt", {"w": torch.ones(2)}, {"by": "b"})
    state, meta = second.load("m.pt")
    assert meta == {"by": "a"} and torch.equal(state["w"], torch.zeros(2))
    assert torch.load(second.node / "m.pt", weights_only=True)["meta"] == '{"by": "a"}'


def test_a_node_copy_that_cannot_be_written_is_a_warning(tmp_path, monkeypatch):
    uri = memory_uri()
    blocked = tmp_path / "full-tmp"
    blocked.write_text("a file where the node folder would be")
    monkeypatch.setattr(tempfile, "tempdir", str(blocked))
    cache = ModelCache(uri)
    with pytest.warns(RuntimeWarning, match="no node copy of m.pt"):
        cache.save("m.pt", {"w": torch.ones(1)}, {})
    fs, root = filesystem(uri)
    assert read_bytes(fs, f"{root}/m.pt") is not None  # the model itself is stored
