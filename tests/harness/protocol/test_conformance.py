import subprocess
import sys
import textwrap

import pytest

from methods import METHODS
from harness.protocol.conformance import check_method

BUILTINS = ["retrain", "graph_edit", "finetune", "neggrad", "neggrad_plus", "mmrecun"]


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_method_conforms(name):
    check_method(METHODS.get(name))


@pytest.mark.parametrize("name", ["mmrecun", "neggrad_plus"])
def test_reverse_methods_conform_on_a_content_backbone(name):
    check_method(METHODS.get(name), backbone="mgcn", regime="user")


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
        check_method(cls)
        print(cls.__name__, "noop_plugin" in METHODS.names())
    ''')
    env_path = f"{target}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": env_path, "PATH": ""}, check=True)
    assert out.stdout.strip() == "Noop True"
