from pathlib import Path

import pandas as pd
import pytest

from harness.distributed.store import SCHEMA, ResultsStore
from harness.storage.locations import folder_name


def record(key: str, **fields) -> dict:
    return {"run_key": key, "method": "graph_edit", "status": "ok", "seed": 0} | fields


def test_append_and_read_back(tmp_path):
    store = ResultsStore(tmp_path / "out")
    assert store.files() == [] and store.keys() == set() and list(store.read().columns) == SCHEMA.names
    store.append([record("a", **{"forget_recall@20": 0.5})])
    store.append([record("b", regime="item", **{"item_exposure@20": 0.1}), record("c", status="error", error="boom")])
    frame = pd.read_parquet(tmp_path / "out")  # what users do
    assert sorted(frame["run_key"]) == ["a", "b", "c"]
    assert list(frame.columns) == SCHEMA.names  # no column lost between batches
    assert frame.set_index("run_key").loc["b", "item_exposure@20"] == 0.1
    assert pd.isna(frame.set_index("run_key").loc["a", "item_exposure@20"])
    assert store.keys() == {"a", "b", "c"} and len(store.files()) == 2


def test_partial_and_hidden_files_are_not_records(tmp_path):
    store = ResultsStore(tmp_path)
    store.append([record("a")])
    (tmp_path / ".part-x.parquet.tmp").write_bytes(b"PAR1 half a file")  # a crash mid-write
    (tmp_path / "_logs").mkdir()
    (tmp_path / "_logs" / "run.log").write_text("log")
    (tmp_path / "_experiment.toml").write_text("x = 1")
    assert store.keys() == {"a"}
    assert list(pd.read_parquet(tmp_path)["run_key"]) == ["a"]


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    store = ResultsStore(tmp_path)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(OSError):
        store.append([record("a")])
    assert store.files() == [] and store.keys() == set()


def test_unknown_fields_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not in the store schema: \\['colour'\\]"):
        ResultsStore(tmp_path).append([record("a", colour="red")])
    assert ResultsStore(tmp_path).files() == []


def test_every_field_of_a_real_record_fits_the_schema(tmp_path):
    """A record from run_method (item regime: every optional field) is stored whole."""
    from harness.data.regimes import make_task
    from harness.protocol.unlearning import prepare, run_method
    from harness.data.tiny import tiny_dataset

    dataset = tiny_dataset()
    task = make_task(dataset, "item", "random", 0.2, 0)
    refs = prepare(dataset, "lightgcn", task, 0, train_overrides={"max_epochs": 2, "batch_size": 64},
                   cache_dir=None, progress=False, audit_size=20)
    rec = run_method(refs, "graph_edit") | {"run_key": "k"}
    ResultsStore(tmp_path).append([rec])
    stored = ResultsStore(tmp_path).read().iloc[0]
    for key, value in rec.items():
        assert stored[key] == value or (value != value and stored[key] != stored[key]), key  # NaN stays NaN


def _records(n: int) -> list[dict]:
    return [record(f"k{i}", seed=i % 3, regime=["interaction", "user"][i % 2], **{"forget_ks": i / 10})
            for i in range(n)]


@pytest.mark.parametrize("uri", ["file://{tmp}/store", "memory://tru-test-{name}/store"])
def test_a_store_on_a_uri_writes_reads_and_claims_like_a_folder(tmp_path, uri, request):
    """``file://`` goes through pyarrow's own filesystems, ``memory://`` through fsspec's
    (an object store's code path: no rename; it lives in this process only, so it is read
    with pandas here, not by Ray Data's workers)."""
    location = uri.format(tmp=tmp_path, name=request.node.name.replace("[", "-").replace("]", "").replace("/", "-"))
    store = ResultsStore(location)
    assert store.files() == [] and store.manifest() is None
    manifest = {"experiment": "e", "training": {}, "hparams": {}, "budget": {}, "audit_size": 10,
                "report_seeds": [0], "development_seeds": [1], "sweeps": {}}
    store.claim(manifest)
    store.append(_records(3)[:2])
    store.append(_records(3)[2:])
    again = ResultsStore(location)  # a second process opening the same URI
    assert again.keys() == {"k0", "k1", "k2"} and again.manifest()["experiment"] == "e"
    frame = again.read("pandas")
    assert list(frame["run_key"]) == ["k0", "k1", "k2"] and list(frame.columns) == SCHEMA.names
    assert not [f for f in again.fs.get_file_info(__import__("pyarrow.fs").fs.FileSelector(again.root))
                if f.base_name.endswith(".tmp")]
    with pytest.raises(Exception, match="made by experiment 'e'"):
        again.check(manifest | {"experiment": "other"})


def test_a_uri_nothing_can_open_is_one_line(tmp_path):
    from harness.core.errors import UserError

    with pytest.raises(UserError, match=r"^nosuchscheme://x/y: not a folder nor a URI") as info:
        ResultsStore("nosuchscheme://x/y")
    assert "\n" not in str(info.value)


@pytest.mark.cluster  # Ray Data's start-up: make test-cluster
def test_ray_data_and_pandas_read_the_same_records(ray_local, tmp_path):
    store = ResultsStore(f"file://{tmp_path}/out")
    for chunk in range(4):  # several files, of several sizes, out of name order is not possible (timestamps)
        store.append(_records(5 + chunk)[chunk:])
    assert store.uses_ray_data() and not ResultsStore(tmp_path / "out").uses_ray_data()  # a URI: Ray Data
    by_pandas, by_ray = store.read("pandas"), store.read("ray")
    pd.testing.assert_frame_equal(by_pandas, by_ray)
    assert len(by_pandas) == sum(5 for _ in range(4))


def test_a_run_on_a_uri_keeps_its_local_files_in_a_local_folder_and_copies_them_up(tmp_path, monkeypatch):
    import harness.distributed.store as store_module
    from harness.distributed.store import local_folder

    assert local_folder("runs/x") == Path("runs/x")  # a local store's files are in its folder
    monkeypatch.setattr(store_module, "RUNS_CACHE", tmp_path / "runs-cache")
    folder = local_folder("s3://bucket/runs/x")
    assert folder == tmp_path / "runs-cache" / folder_name("s3://bucket/runs/x") and folder.is_absolute()
    (folder / "_logs").mkdir(parents=True)
    (folder / "_logs" / "run.log").write_text("log")
    (folder / "_sweeps").mkdir()
    (folder / "_sweeps" / "s.json").write_text('{"sweep": "s"}')
    (folder / "_tune").mkdir()
    (folder / "_tune" / "big.bin").write_bytes(b"x")  # Tune's state stays local
    store = ResultsStore("memory://tru-test-publish/x")
    assert store.publish(folder) == 2 and ResultsStore("runs/x").publish(folder) == 0
    assert store.texts("_sweeps", ".json") == ['{"sweep": "s"}'] and store.texts("_nothing", ".json") == []
    with store.fs.open_input_stream(store._path("_logs/run.log")) as handle:
        assert handle.read() == b"log"
    assert store.fs.get_file_info(store._path("_tune/big.bin")).type == __import__("pyarrow.fs").fs.FileType.NotFound


def test_a_failed_write_on_an_object_store_leaves_no_record_file(monkeypatch):
    import pyarrow.parquet as pq

    store = ResultsStore(f"memory://tru-test-failed-{id(monkeypatch)}/x")
    store.append(_records(1))
    real = pq.write_table

    def half(table, where, **kwargs):
        where.write(b"PAR1 half a file")
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(pq, "write_table", half)
    with pytest.raises(KeyboardInterrupt):
        store.append(_records(2))
    monkeypatch.setattr(pq, "write_table", real)
    assert len(store.files()) == 1 and store.keys() == {"k0"}  # the half file never got a record file's name


def test_a_file_given_as_a_store_is_no_store(tmp_path):
    (tmp_path / "f").write_text("x")
    assert ResultsStore(tmp_path / "f").files() == []


def test_each_record_file_is_checked_once_per_store(tmp_path, monkeypatch):
    """Reading a store of N files reads N schemas the first time and only new files' after."""
    import pyarrow.parquet as pq

    store = ResultsStore(tmp_path / "out")
    store.append([record("a")])
    store.append([record("b")])
    read = []
    real = pq.read_schema
    monkeypatch.setattr(pq, "read_schema", lambda path, **kw: read.append(path) or real(path, **kw))
    assert store.keys() == {"a", "b"} and len(read) == 2
    store.append([record("c")])
    assert len(store.read()) == 3 and len(read) == 3  # only the new file
    (tmp_path / "out" / "part-zz.parquet").write_bytes(b"not parquet")
    with pytest.raises(Exception, match="part-zz.parquet is not a Parquet file"):
        store.read()
