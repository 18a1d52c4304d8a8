"""The quickstart is the README's reference for the file format: the keys it leaves at
their defaults are there as comments, and uncommented they change nothing it runs."""

import re
import tomllib

from backbones import BACKBONES
from harness.core.paths import DEFAULT_CACHE, QUICKSTART
from harness.distributed.experiment import Experiment, experiment_from, load_experiment

COMMENTED_KEY = re.compile(r"^# (\[hparams\.\w+\]|[a-z_]+ = )")


def _uncommented() -> str:
    return "\n".join(line[2:] if COMMENTED_KEY.match(line) else line for line in QUICKSTART.read_text().splitlines())


def test_quickstart_documents_its_defaulted_keys_with_their_defaults():
    text = _uncommented()
    raw = tomllib.loads(text)
    assert {"hparams", "audit_size", "cache_dir", "plugins"} <= set(raw)  # documented in the file
    assert not {"hparams", "audit_size", "cache_dir"} & set(tomllib.loads(QUICKSTART.read_text()))  # as comments
    assert raw["audit_size"] == Experiment.model_fields["audit_size"].default
    assert raw["cache_dir"] == str(DEFAULT_CACHE) and raw["plugins"] == []
    assert raw["hparams"] == {"mgcn": BACKBONES.get("mgcn").hyperparameter_defaults()}

    written = load_experiment(QUICKSTART)
    spelled_out = experiment_from(raw | {"name": "quickstart"}, QUICKSTART)
    assert spelled_out.model_dump(exclude={"hparams"}) == written.model_dump(exclude={"hparams"})
    assert written.hparams == {}  # the quickstart runs MGCN at its defaults, which the comments spell out
