import pandas as pd
import pytest

from harness.distributed.store import SCHEMA, ResultsStore


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
