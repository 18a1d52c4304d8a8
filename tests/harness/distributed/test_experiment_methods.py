"""``methods = "all"`` is the built-in methods; plugins enter by name or with ``"all+plugins"``."""

import json
import subprocess
import sys
import textwrap

import pytest

from harness.core.errors import UserError
from harness.distributed.experiment import expand, load_experiment
from methods import METHODS

PLUGIN = textwrap.dedent('''
    from methods.base import UnlearningMethod

    class Outside(UnlearningMethod):
        """An installed plugin (entry point) for the experiment tests."""

        def unlearn(self, model, task, budget):
            return model
''')


def test_all_is_the_builtins_even_with_a_plugins_module(experiment_file):
    exp = load_experiment(experiment_file(methods='"all"', plugins='["methods.faults"]'))
    assert "fault-raise" in METHODS.names()  # registered by the plugins module
    assert [spec.name for spec in exp.method_specs()] == METHODS.builtin_names()
    assert {"graph_edit", "retrain", "tru", "mmrecun"} <= set(METHODS.builtin_names())
    assert not any(name.startswith("fault-") for name in METHODS.builtin_names())
    plus = load_experiment(experiment_file(methods='"all+plugins"', plugins='["methods.faults"]'))
    assert {"fault-raise", "fault-sleep", "tru"} <= {job.method for job in expand(plus)}


def test_installed_entry_point_plugins_enter_only_by_name_or_all_plus_plugins(experiment_file, plugin_site, tmp_path):
    env = plugin_site({"tru_outside_plugin.py": PLUGIN}, {"tru.methods": {"outside": "tru_outside_plugin:Outside"}})
    files = {}
    for methods in ('"all"', '"all+plugins"', '[{name = "outside"}]'):
        path = experiment_file(methods=methods, plugins="[]")
        files[methods] = str(path.rename(tmp_path / f"exp{len(files)}.toml"))
    code = textwrap.dedent('''
        import json, sys
        from harness.distributed.experiment import load_experiment
        from methods import METHODS
        names = {m: [s.name for s in load_experiment(path).method_specs()] for m, path in json.loads(sys.argv[1]).items()}
        print(json.dumps({"names": names, "builtins": METHODS.builtin_names(), "registered": METHODS.names()}))
    ''')
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(files)], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "outside" in out["registered"] and "outside" not in out["builtins"]
    assert out["names"]['"all"'] == out["builtins"]
    assert out["names"]['"all+plugins"'] == sorted(out["builtins"] + ["outside"])
    assert out["names"]['[{name = "outside"}]'] == ["outside"]


@pytest.mark.parametrize("value, shown", [('"everything"', "'everything'"), ("3", "3")])
def test_another_word_is_a_one_line_error(experiment_file, value, shown):
    path = experiment_file(methods=value)
    with pytest.raises(UserError) as info:
        load_experiment(path)
    assert str(info.value) == (f'{path}: methods: Value error, must be "all" (the built-in methods), "all+plugins" '
                               f"(every registered one) or a list of {{name, params}} tables (got {shown})")
