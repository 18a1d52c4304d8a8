"""The listing commands: every registered plugin describes itself."""

import json

import pytest

from harness.cli import main


@pytest.mark.parametrize("command", ["methods", "backbones"])
def test_every_plugin_has_a_summary_and_typed_hyperparameters(command, capsys):
    assert main([command, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and all(row["summary"] for row in rows), [row["name"] for row in rows if not row["summary"]]
    for row in rows:
        for name, h in row["hyperparameters"].items():
            assert {"type", "default", "low", "high"} <= set(h), (row["name"], name)
    assert main([command]) == 0
    table = capsys.readouterr().out
    for row in rows:
        assert f"{row['name']}: " in table


def test_tables_show_types_defaults_and_ranges(capsys):
    main(["methods"])
    tru = capsys.readouterr().out.split("\ntru: ")[1].split("\n\n")[0]
    assert tru.startswith("Targeted reverse update")
    gate = next(line for line in tru.splitlines() if line.split()[:1] == ["gate_strength"])
    assert gate.split()[:4] == ["gate_strength", "float", "1.0", "[0.0,"]
    main(["backbones"])
    lightgcn = capsys.readouterr().out.split("lightgcn: ")[1].split("\n\n")[0]
    assert any(line.split() == ["dim", "int", "64", "[1,", "inf)"] for line in lightgcn.splitlines())


def test_ablations_are_classes_found_by_name():
    from methods import METHODS
    from methods.tru import TRU, TRUNoGate, TRUNoIsolation, TRUNoScale

    for name, cls in (("tru-no-gate", TRUNoGate), ("tru-no-scale", TRUNoScale), ("tru-no-isolation", TRUNoIsolation)):
        assert METHODS.get(name) is cls and issubclass(cls, TRU)
        method = cls()
        assert all(method.params[key] == value for key, value in cls.fixed.items())
        assert not set(cls.fixed) & {h.name for h in cls.hyperparameters}  # fixed ones cannot be set


@pytest.mark.parametrize("flag", ["--budget-epochs", "--batch-size"])
def test_a_bad_budget_is_a_one_line_error_before_any_work(flag, capsys):
    assert main(["unlearn", "--dataset", "no-such-dataset", flag, "0", "--quiet"]) == 2
    assert capsys.readouterr().err == f"tru: error: {flag}: Input should be greater than or equal to 1 (got 0)\n"
