"""The README's plugin route, exactly as written: the example method installed through an
entry point, checked with the README's commands; broken plugins fail by rule name.

Nothing is installed in the venv: the plugin is a module and a ``*.dist-info`` on the
subprocess's ``PYTHONPATH`` (the ``plugin_site`` fixture), which importlib.metadata reads
as an installed distribution.
"""

import re
import subprocess
import textwrap
import tomllib

import pytest

from harness.core.paths import PROJECT
from harness.protocol.conformance import RULES

RULE_NAMES = [rule.__name__ for rule in RULES]


def _plugins_section() -> str:
    readme = (PROJECT / "README.md").read_text()
    return readme[readme.index("\n## Plugins\n"):].split("\n## ", 2)[1]


def _block(language: str, first_line: str) -> str:
    """The README Plugins section's fenced ``language`` block that starts with ``first_line``."""
    blocks = re.findall(rf"```{language}\n(.*?)```", _plugins_section(), flags=re.S)
    found = [b for b in blocks if b.startswith(first_line)]
    assert len(found) == 1, f"README: no single ```{language} block starting with {first_line!r}"
    return found[0]


def _entry_points() -> dict:
    return tomllib.loads(_block("toml", "[project.entry-points."))["project"]["entry-points"]


BROKEN = textwrap.dedent('''
    import torch

    from methods import UnlearningMethod


    class Raises(UnlearningMethod):
        """Raises."""

        def unlearn(self, model, task, budget):
            raise RuntimeError("boom")


    class ReturnsNone(UnlearningMethod):
        """Forgets to return the model."""

        def unlearn(self, model, task, budget):
            model.user_embedding.data.mul_(0.5)


    class WrongShapes(UnlearningMethod):
        """Widens the user table."""

        def unlearn(self, model, task, budget):
            table = model.user_embedding
            table.data = torch.zeros(table.shape[0], table.shape[1] + 1)
            return model
''')

BROKEN_ENTRY_POINTS = {"raises": "broken_plugin:Raises", "returns_none": "broken_plugin:ReturnsNone",
                       "wrong_shapes": "broken_plugin:WrongShapes"}


@pytest.fixture
def site(plugin_site):
    """The README's example plugin and three broken ones, installed through entry points."""
    entry_points = _entry_points()
    entry_points["tru.methods"] = entry_points["tru.methods"] | BROKEN_ENTRY_POINTS
    module = _block("python", "# my_package/__init__.py")
    return plugin_site({"my_package/__init__.py": module, "broken_plugin.py": BROKEN}, entry_points)


def _run(command: str, cwd, env) -> subprocess.CompletedProcess:
    """``command`` as written, in a shell; pytest lists every outcome (``-rA``) on wide lines."""
    env = env | {"PYTEST_ADDOPTS": "-rA", "COLUMNS": "500"}
    return subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _commands() -> list[str]:
    return [line for line in _block("bash", "pytest ").splitlines() if line.strip()]


def test_readme_plugin_passes_the_readme_commands_as_written(site, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "test_my_method.py").write_text(_block("python", "# test_my_method.py"))
    suite, script = _commands()
    assert suite == "pytest test_my_method.py"

    proc = _run(suite, work, site)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in RULE_NAMES:  # one named test per rule, each passed
        assert f"PASSED test_my_method.py::TestMyMethod::test_{name}[my_method-lightgcn-interaction]" in proc.stdout
    assert f"{len(RULE_NAMES)} passed" in proc.stdout

    proc = _run(script, work, site)  # the script form, on the class imported from its package
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[:-1] == [f"ok   {name}" for name in RULE_NAMES]
    assert lines[-1] == f"my_method-lightgcn-interaction: all {len(RULE_NAMES)} conformance rules pass"


def test_broken_plugins_fail_by_rule_name(site, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    test_file = _block("python", "# test_my_method.py").replace('["my_method"]', str(list(BROKEN_ENTRY_POINTS)))
    (work / "test_my_method.py").write_text(test_file)
    proc = _run(_commands()[0], work, site)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = {}
    for name, case, why in re.findall(r"^FAILED test_my_method.py::TestMyMethod::test_(\w+)\[(\w+)-lightgcn-interaction\]"
                                      r" - (.*)$", proc.stdout, flags=re.M):
        failed.setdefault(case, {})[name] = why
    needs_model = ["returns_a_backbone", "same_names_and_shapes", "finite_scores", "deterministic"]
    assert sorted(failed["raises"]) == sorted(["unlearn_runs"] + needs_model)
    assert all("unlearn raised RuntimeError: boom (at " in why for why in failed["raises"].values())
    assert sorted(failed["returns_none"]) == sorted(needs_model)
    assert all("unlearn returned NoneType, not a backbone" in why for why in failed["returns_none"].values())
    assert sorted(failed["wrong_shapes"]) == ["finite_scores", "same_names_and_shapes"]
    assert re.search(r"ConformanceError: unlearn changed parameter names or shapes: user_embedding \((\d+), 64\) "
                     r"-> \(\1, 65\)$", failed["wrong_shapes"]["same_names_and_shapes"])
    assert "finite_scores: RuntimeError" in failed["wrong_shapes"]["finite_scores"]  # its forward fails, named
    passed = 3 * len(RULE_NAMES) - sum(map(len, failed.values()))
    assert f"{sum(map(len, failed.values()))} failed, {passed} passed" in proc.stdout
