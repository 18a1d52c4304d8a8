"""Shared fixtures: tiny MMRec-format datasets (:mod:`harness.data.tiny`) in temporary folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.data.datasets import load_dataset
from harness.data.tiny import write_tiny


@pytest.fixture
def tiny_folder(tmp_path) -> Path:
    return write_tiny(tmp_path / "tiny")


@pytest.fixture
def tiny(tiny_folder):
    return load_dataset(tiny_folder)


@pytest.fixture
def make_mmrec(tmp_path):
    """``make_mmrec(name, **kwargs)`` writes a tiny folder (see :func:`harness.data.tiny.write_tiny`)."""
    return lambda name, **kwargs: write_tiny(tmp_path / name, **kwargs)


@pytest.fixture
def ray_local():
    """A local Ray on 2 CPUs, started once and shared by the tests that need it."""
    import ray  # the tests that need no Ray do not import it

    from harness.distributed.cluster import connect
    from harness.distributed.experiment import RaySettings

    connect(RaySettings(num_cpus=2, object_store_mb=128))
    yield ray


@pytest.fixture(scope="session", autouse=True)
def _stop_ray():
    yield
    import sys

    if "ray" in sys.modules:
        sys.modules["ray"].shutdown()


def write_experiment(path: Path, dataset: Path, **sections) -> Path:
    """A small experiment on ``dataset`` (LightGCN, 3 training epochs); ``sections``
    override top-level keys (TOML text per key)."""
    text = {
        "datasets": f'["{dataset}"]',
        "backbones": '["lightgcn"]',
        "report_seeds": "[0]",
        "development_seeds": "[100]",
        "plugins": '["methods.faults"]',
        "methods": '[{name = "graph_edit"}, {name = "mmrecun", params = {lr = 0.01}}]',
        "cache_dir": f'"{path.parent / "cache"}"',
        "regimes": '[{regime = "interaction", ratio = 0.2}, {regime = "user", ratio = 0.2}]',
        "training": "{max_epochs = 3, batch_size = 64}",
        "resources": "{actors_per_model = 1, num_cpus = 1, num_gpus = 0}",
        "ray": "{num_cpus = 2, object_store_mb = 128}",
    } | sections
    path.write_text("".join(f"{key} = {value}\n" for key, value in text.items() if value is not None))
    return path


@pytest.fixture
def experiment_file(tmp_path, tiny_folder):
    """``experiment_file(dataset=None, **sections)`` writes ``exp.toml`` (see :func:`write_experiment`)."""
    return lambda dataset=None, **sections: write_experiment(
        tmp_path / "exp.toml", tiny_folder if dataset is None else dataset, **sections)


@pytest.fixture
def plugin_site(tmp_path):
    """``plugin_site(modules, entry_points)`` writes an installed-looking outside plugin into
    ``tmp_path/site``: each ``{"name.py": source}`` module and a ``*.dist-info`` whose
    ``entry_points.txt`` holds ``{group: {name: "module:Class"}}``. It returns the
    environment of a subprocess that sees it (``PYTHONPATH``; the venv's ``bin`` first on
    ``PATH``), so importlib.metadata finds the entry points and nothing enters the venv."""
    import os
    import sys

    def write(modules: dict[str, str], entry_points: dict[str, dict[str, str]]) -> dict:
        site = tmp_path / "site"
        info = site / "tru_test_plugin-0.0.1.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        for name, source in modules.items():
            (site / name).parent.mkdir(parents=True, exist_ok=True)
            (site / name).write_text(source)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tru-test-plugin\nVersion: 0.0.1\n")
        (info / "entry_points.txt").write_text("".join(
            f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in names.items())
            for group, names in entry_points.items()))
        bin_dir = str(Path(sys.executable).parent)
        return os.environ | {"PYTHONPATH": str(site), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                             "RAY_AUTH_MODE": "disabled"}

    return write
