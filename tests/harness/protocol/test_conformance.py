import subprocess
import sys
import textwrap

import pytest

from methods import METHODS
from harness.protocol.conformance import ConformanceError, check_method
from harness.protocol.conformance_suite import MethodConformance
from methods.base import UnlearningMethod


class TestBuiltinMethods(MethodConformance):
    """Every built-in method passes the shipped suite (one named test per rule)."""

    methods = METHODS.builtin_names()


class TestReverseMethodsOnAContentBackbone(MethodConformance):
    methods = ["mmrecun", "neggrad_plus"]
    backbones = ["mgcn"]
    regimes = ["user"]


def test_check_method_prints_each_rule_and_names_every_failure():
    import methods.faults  # noqa: F401  (registers fault-raise, a method that raises)

    lines = []
    with pytest.raises(ConformanceError) as failure:
        check_method("fault-raise", out=lines.append)
    message = str(failure.value)
    assert message.startswith("fault-raise-lightgcn-interaction: 5 of 11 rules failed: ")
    for rule in ("unlearn_runs", "returns_a_backbone", "same_names_and_shapes", "finite_scores", "deterministic"):
        assert f"{rule}: unlearn raised RuntimeError: fault-raise: raised on purpose (at " in message
        assert any(line.startswith(f"FAIL {rule}: unlearn raised RuntimeError") for line in lines)
    assert "ok   registered" in lines and "ok   task_untouched" in lines and len(lines) == 11

    lines.clear()
    check_method(METHODS.get("graph_edit"), out=lines.append)
    assert lines[-1] == "graph_edit-lightgcn-interaction: all 11 conformance rules pass"


def test_an_unregistered_class_is_a_named_failure():
    class Stray(UnlearningMethod):
        def unlearn(self, model, task, budget):
            return model

    with pytest.raises(ConformanceError, match=r"registered: Stray is not registered: add an entry point in the "
                                               r"group 'tru.methods' or decorate it"):
        check_method(Stray, out=None)


def test_unknown_method_lists_valid_names():
    from harness.core.errors import UserError

    with pytest.raises(UserError, match=r"unknown method 'forget_all' \(valid: .*graph_edit.*mmrecun.*retrain"):
        METHODS.get("forget_all")


def test_bad_hyperparameters_are_named():
    from harness.core.errors import UserError

    with pytest.raises(UserError, match="hyperparameter 'lr'=5.0 outside"):
        METHODS.get("mmrecun")(lr=5.0)
    with pytest.raises(UserError, match="'lambda_f' must be float"):
        METHODS.get("mmrecun")(lambda_f="x")
    with pytest.raises(UserError, match="unknown hyperparameter 'lambda_f'"):
        METHODS.get("finetune")(lambda_f=1.0)


def test_outside_plugin_registers_through_an_entry_point(tmp_path):
    pkg = tmp_path / "plugin" / "tru_forget_plugin"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent('''
        from methods.base import UnlearningMethod

        class Noop(UnlearningMethod):
            """Does nothing (a plugin for the registry test)."""

            def unlearn(self, model, task, budget):
                return model
    '''))
    (tmp_path / "plugin" / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "tru-forget-plugin"
        version = "0.0.1"
        [project.entry-points."tru.methods"]
        noop_plugin = "tru_forget_plugin:Noop"
    '''))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(tmp_path / "plugin")],
        check=True, capture_output=True,
    )
    code = textwrap.dedent('''
        from methods import METHODS
        from harness.protocol.conformance import check_method
        cls = METHODS.get("noop_plugin")
        check_method(cls, out=None)
        print(cls.__name__, "noop_plugin" in METHODS.names())
    ''')
    env_path = f"{target}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": env_path, "PATH": ""}, check=True)
    assert out.stdout.strip() == "Noop True"


class TestPartitionedMethodsOnAContentBackbone(MethodConformance):
    methods = ["sisa", "receraser"]
    backbones = ["mgcn"]
    regimes = ["user", "item"]


def test_a_method_that_unlearns_in_start_is_caught():
    from harness.protocol.conformance import Subject, start_ignores_what_is_forgotten

    class ForgetsEarly(UnlearningMethod):
        """Does its work in the untimed start."""

        def start(self, model, task, budget):
            import torch

            with torch.no_grad():
                model.user_embedding[torch.from_numpy(task.users)] = 0.0
            return model

        def unlearn(self, model, task, budget):
            return model

    with pytest.raises(ConformanceError, match="start depends on which pairs are forgotten: user_embedding"):
        start_ignores_what_is_forgotten(Subject(ForgetsEarly))
    start_ignores_what_is_forgotten(Subject("sisa"))  # its original depends on D alone
