"""A new user's mistakes at the command line: each one line ``tru: error: ...`` naming the
flag, file or folder, exit code 2, nothing written; a failed method exits 1. The checks
all happen before Ray starts, so none of these tests starts it."""

import argparse
import json

import pandas as pd
import pytest

from harness.cli import build_parser, main
from harness.distributed.experiment import load_experiment
from harness.distributed.store import ResultsStore, identity


def snapshot(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def stored_by(path, out) -> dict:
    """``out`` as the experiment file ``path`` leaves it after a first record: its manifest
    and one record; returns the folder's files."""
    store = ResultsStore(out)
    store.claim(identity(load_experiment(path)))
    store.append([{"run_key": "k0", "dataset": "tiny", "method": "graph_edit", "seed": 0, "status": "ok"}])
    return snapshot(out)


COMMANDS = {"run": [], "tune": ["--method", "mmrecun", "--trials", "2"], "compare": ["--trials", "2"]}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_resume_with_a_changed_max_epochs_is_refused(command, experiment_file, tmp_path, capsys):
    out = tmp_path / "out"
    before = stored_by(experiment_file(), out)  # training.max_epochs = 3
    changed = experiment_file(training="{max_epochs = 40, batch_size = 64}")
    assert main([command, str(changed), *COMMANDS[command], "--out", str(out), "--resume", "--quiet"]) == 2
    assert capsys.readouterr().err == (f"tru: error: {out}: made with training.max_epochs = 3, this experiment "
                                       "has 40; use another --out\n")
    assert snapshot(out) == before  # no record, no log, no study, manifest unchanged


@pytest.mark.parametrize("command", list(COMMANDS))
def test_another_experiments_folder_is_refused(command, experiment_file, tmp_path, capsys):
    out = tmp_path / "out"
    before = stored_by(experiment_file(), out)
    other = experiment_file(name='"other"')
    assert main([command, str(other), *COMMANDS[command], "--out", str(out), "--resume", "--quiet"]) == 2
    assert capsys.readouterr().err == f"tru: error: {out}: made by experiment 'exp', this one is 'other'; use another --out\n"
    assert snapshot(out) == before


@pytest.mark.parametrize("command", list(COMMANDS))
def test_out_pointing_at_a_file_is_refused(command, experiment_file, tmp_path, capsys):
    taken = tmp_path / "taken.txt"
    taken.write_text("mine")
    assert main([command, str(experiment_file()), *COMMANDS[command], "--out", str(taken), "--quiet"]) == 2
    assert capsys.readouterr().err == f"tru: error: {taken}: is a file, not a results folder; use another --out\n"
    assert taken.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["exp.toml", "taken.txt", "tiny"]


@pytest.mark.parametrize("command, seed", [("train", "-1"), ("unlearn", "-3")])
def test_a_negative_seed_is_refused_before_any_work(command, seed, tiny_folder, tmp_path, capsys):
    cache = tmp_path / "cache"
    argv = [command, "--dataset", str(tiny_folder), "--backbone", "lightgcn", "--seed", seed, "--epochs", "1",
            "--cache-dir", str(cache), "--quiet", "--json"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == f"tru: error: --seed {seed}: must be >= 0\n" and captured.out == ""
    assert not cache.exists()  # no model trained or cached


@pytest.mark.parametrize("command", ["train", "unlearn"])
def test_a_cache_dir_that_cannot_be_written_is_refused_before_training(command, tiny_folder, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    argv = [command, "--dataset", str(tiny_folder), "--backbone", "lightgcn", "--epochs", "1",
            "--cache-dir", f"file://{blocker}/models", "--quiet", "--json"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"tru: error: --cache-dir file://{blocker}/models: cannot be written (")
    assert captured.err.count("\n") == 1 and captured.out == ""


def test_a_failing_method_exits_1_with_its_error_record(tiny_folder, tmp_path, capsys):
    import methods.faults  # noqa: F401  (registers fault-raise)

    argv = ["unlearn", "--dataset", str(tiny_folder), "--backbone", "lightgcn", "--epochs", "2", "--ratio", "0.2",
            "--cache-dir", str(tmp_path / "cache"), "--quiet", "--json", "--batch-size", "64"]
    assert main(argv + ["--method", "fault-raise"]) == 1
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert record["status"] == "error" and record["error"] == "RuntimeError: fault-raise: raised on purpose"
    assert captured.err.splitlines()[-1] == "tru: method failed: RuntimeError: fault-raise: raised on purpose"
    assert main(argv + ["--method", "graph_edit"]) == 0  # the same task, a method that works (models cached)
    assert json.loads(capsys.readouterr().out)["status"] == "ok"


def test_report_on_parquet_that_is_not_a_results_store(tmp_path, capsys):
    folder = tmp_path / "other"
    folder.mkdir()
    pd.DataFrame({"a": [1, 2]}).to_parquet(folder / "data.parquet")
    assert main(["report", str(folder)]) == 2
    assert capsys.readouterr().err.startswith(f"tru: error: {folder}: not a results store (data.parquet has no "
                                              "column run_key, status, dataset")
    assert sorted(p.name for p in folder.iterdir()) == ["data.parquet"]  # no report written


def test_report_on_a_folder_without_successful_records(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 2
    assert capsys.readouterr().err == f"tru: error: {empty}: no results store here (no record files)\n"
    failed = tmp_path / "failed"
    ResultsStore(failed).append([{"run_key": "a", "dataset": "tiny", "method": "tru", "status": "error", "error": "x"}])
    assert main(["report", str(failed)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tru: error: {failed}: ") and "no successful records" in err and err.count("\n") == 1
    assert not list(failed.glob("*.html")) and not list(empty.iterdir())


@pytest.mark.parametrize("command", ["unlearn", "run", "report"])
def test_a_wrong_flag_shows_the_subcommands_usage(command, capsys):
    with pytest.raises(SystemExit) as exit:
        main([command, "--bogus"] + (["x"] if command == "report" else []))
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: tru {command} ")
    assert err.splitlines()[-1] == f"tru {command}: error: unrecognized arguments: --bogus"


def test_every_option_of_every_command_says_what_it_is(capsys):
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    missing = [(name, a.dest) for name, sub in commands.items() for a in sub._actions if not a.help]
    assert missing == []
    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--trials TRIALS trials of the sweep in all, stored ones included (default: 20)" in text
    with pytest.raises(SystemExit):
        main(["unlearn", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("--method METHOD registered unlearning method", "--seed SEED seed >= 0",
                  "--backbone BACKBONE registered backbone"):
        assert shown in text
