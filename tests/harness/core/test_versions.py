import importlib
import sys
import textwrap

import pytest

from harness.core import versions
from harness.core.versions import code_version, model_code_version, modules_of, record_code_version


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A backbone plugin module on ``sys.path`` (a LightGCN subclass), and a way to edit it."""
    source = tmp_path / "edited_backbone.py"
    source.write_text(textwrap.dedent('''
        from backbones import BACKBONES
        from backbones.lightgcn import LightGCN

        @BACKBONES.register("edited-lightgcn")
        class EditedLightGCN(LightGCN):
            """LightGCN under another name (a plugin whose source the test edits)."""
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("edited_backbone")
    yield module, source
    from backbones import BACKBONES

    BACKBONES._items.pop("edited-lightgcn", None)  # the registry has no public removal
    sys.modules.pop("edited_backbone", None)
    code_version.cache_clear()


def test_a_change_in_a_backbones_source_changes_the_model_cache_key(plugin, tiny, tmp_path):
    from harness.protocol.models import train_backbone

    module, source = plugin
    kwargs = dict(train_overrides={"max_epochs": 1, "batch_size": 64}, cache_dir=tmp_path / "cache", progress=False)
    first = train_backbone(tiny, "edited-lightgcn", 0, **kwargs)
    assert not first.cached and train_backbone(tiny, "edited-lightgcn", 0, **kwargs).cached
    source.write_text(source.read_text() + "\n# a change that does not alter the model still counts\n")
    code_version.cache_clear()
    again = train_backbone(tiny, "edited-lightgcn", 0, **kwargs)
    assert not again.cached  # a new key: the stale model is not reused
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2


def test_versions_cover_the_class_and_its_bases_only(plugin):
    from backbones import BACKBONES
    from backbones.base import Backbone
    from methods import METHODS, UnlearningMethod

    module, source = plugin
    assert modules_of(module.EditedLightGCN, Backbone) == ("backbones.base", "backbones.lightgcn", "edited_backbone")
    assert modules_of(METHODS.get("tru-no-gate"), UnlearningMethod) == ("methods.base", "methods.reverse", "methods.tru")
    lightgcn = modules_of(BACKBONES.get("lightgcn"), Backbone)
    mgcn = modules_of(BACKBONES.get("mgcn"), Backbone)
    assert model_code_version(lightgcn) != model_code_version(mgcn)
    before = model_code_version(lightgcn)
    source.write_text(source.read_text() + "\n# edited\n")  # another backbone's source
    code_version.cache_clear()
    assert model_code_version(lightgcn) == before  # LightGCN's cached models stay valid
    tru = modules_of(METHODS.get("tru"), UnlearningMethod)
    mmrecun = modules_of(METHODS.get("mmrecun"), UnlearningMethod)
    assert record_code_version(lightgcn, tru) != record_code_version(lightgcn, mmrecun)


def test_a_package_covers_every_file_below_it():
    names = [name for name, _ in versions.source_files("backbones.blocks")]
    assert "backbones.blocks/graph.py" in names and "backbones.blocks/csr.py" in names
    with pytest.raises(ModuleNotFoundError):
        versions.source_files("no_such_module_here")


def test_a_class_defined_in_a_script_still_gets_a_version(tmp_path, monkeypatch):
    import types

    script = tmp_path / "my_script.py"
    script.write_text("x = 1\n")
    module = types.ModuleType("my_script_without_spec")
    module.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "my_script_without_spec", module)  # like __main__: no import spec
    assert versions.source_files("my_script_without_spec") == [("my_script_without_spec", script)]
