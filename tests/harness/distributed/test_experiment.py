import subprocess
import sys

import pytest
from harness.core.errors import UserError
from harness.core.paths import QUICKSTART
from harness.distributed.experiment import expand, load_experiment


def test_grid_expansion_order_and_keys(experiment_file):
    exp = load_experiment(experiment_file(report_seeds="[0, 1]", backbones='["lightgcn", "mgcn"]'))
    jobs = expand(exp)
    assert len(jobs) == 2 * 2 * 2 * 2  # backbones x seeds x regimes x methods
    assert [(j.backbone, j.seed, j.regime.regime, j.method) for j in jobs[:4]] == [
        ("lightgcn", 0, "interaction", "graph_edit"), ("lightgcn", 0, "interaction", "mmrecun"),
        ("lightgcn", 0, "user", "graph_edit"), ("lightgcn", 0, "user", "mmrecun"),
    ]
    assert len({j.run_key for j in jobs}) == len(jobs)
    assert {j.seed for j in jobs} == {0, 1}  # report seeds only; development seed 100 is for tuning
    assert [j.run_key for j in expand(load_experiment(experiment_file(report_seeds="[0, 1]", backbones='["lightgcn", "mgcn"]')))] == [
        j.run_key for j in jobs
    ]  # keys are stable
    changed = expand(load_experiment(experiment_file(report_seeds="[0, 1]", backbones='["lightgcn", "mgcn"]',
                                                     training="{max_epochs = 4, batch_size = 64}")))
    assert not {j.run_key for j in changed} & {j.run_key for j in jobs}  # training settings are part of the key


def test_all_methods_and_relative_dataset(experiment_file, tiny_folder):
    path = experiment_file(dataset=tiny_folder.name, methods='"all"', plugins="[]")
    exp = load_experiment(path)
    from methods import METHODS

    assert {j.method for j in expand(exp)} == set(METHODS.builtin_names())
    assert exp.datasets == [str(tiny_folder.resolve())]
    assert exp.name == "exp"


def test_quickstart_is_valid():
    exp = load_experiment(QUICKSTART)
    assert exp.datasets == ["ml100k"] and exp.backbones == ["mgcn"]
    assert {r.regime for r in exp.regimes} == {"interaction", "user", "item"}
    from methods import METHODS

    partitioned = {"sisa", "receraser"}  # every built-in but the exact partitioned ones (an hour of shard training)
    assert {spec.name for spec in exp.method_specs()} == set(METHODS.builtin_names()) - partitioned
    assert len(expand(exp)) == 3 * (len(METHODS.builtin_names()) - len(partitioned))


@pytest.mark.parametrize(
    "sections, message",
    [
        ({"colour": '"red"'}, r"colour: Extra inputs are not permitted"),
        ({"report_seeds": '"zero"'}, r"report_seeds: Input should be a valid list"),
        ({"report_seeds": "[-1]"}, r"report_seeds: .*>= 0"),
        ({"development_seeds": "[1, 1]"}, r"development_seeds: .*repeated seed"),
        ({"development_seeds": "[0, 7]"}, r"development_seeds and report_seeds overlap at \[0\]"),
        ({"tune": "{retest_seeds = [5]}"}, r"tune.retest_seeds \[5\] must be report seeds \(\[0\]\)"),
        ({"seeds": "[0]"}, r"seeds: protocol v2 splits seeds into report_seeds .* and development_seeds"),
        ({"datasets": '["nope"]'}, r"datasets\[0\]: dataset 'nope': not a shipped dataset"),
        ({"backbones": '["resnet"]'}, r"backbones\[0\]: unknown backbone 'resnet' \(valid: lightgcn, mgcn, miggt"),
        ({"methods": '[{name = "forget_all"}]'}, r"methods\[0\]: unknown method 'forget_all' \(valid: "),
        ({"methods": '[{name = "mmrecun", params = {lr = 5.0}}]'}, r"methods\[0\]: .*'lr'=5.0 outside"),
        ({"methods": '[{name = "mmrecun", params = {lr = "fast"}}]'}, r"methods\[0\]: .*'lr' must be float"),
        ({"regimes": '[{regime = "session"}]'}, r"regimes\.0\.regime: Input should be 'interaction', 'user' or 'item'"),
        ({"regimes": '[{regime = "user", ratio = 1.5}]'}, r"regimes\.0\.ratio: Input should be less than 1"),
        ({"training": "{max_epochs = 0}"}, r"training setting 'max_epochs': Input should be greater than or equal to 1"),
        ({"training": "{learning_rate = 0.1}"}, r"training setting 'learning_rate': Extra inputs"),
        ({"resources": "{num_cpus = 0}"}, r"resources\.num_cpus: Input should be greater than 0"),
        ({"resources": "{num_gpus = -1}"}, r"resources\.num_gpus"),
        ({"resources": "{actors = 2}"}, r"resources\.actors: Extra inputs"),
        ({"plugins": '["no_such_module"]'}, r"plugins\[0\]: cannot import 'no_such_module'"),
        ({"hparams": "{mgcn = {dim = 8}}"}, r"hparams\.mgcn: not one of the experiment's backbones"),
        ({"hparams": "{lightgcn = {depth = 8}}"}, r"backbones\[0\]: .*depth"),
        ({"hparams": "{lightgcn = {dim = 0}}"}, r"backbones\[0\]: backbone 'lightgcn': hyperparameter 'dim': Input should be greater than or equal to 1"),
        ({"budget": "{epochs = 0}"}, r"budget\.epochs: Input should be greater than or equal to 1"),
        ({"budget": "{seed = 3}"}, r"budget: Value error, only epochs, batch_size are set here"),
        ({"datasets": None}, r"datasets: Field required"),
    ],
)
def test_config_errors_name_the_key(experiment_file, sections, message):
    path = experiment_file(**sections)
    with pytest.raises(UserError, match=message) as info:
        load_experiment(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(UserError, match="no such experiment file"):
        load_experiment(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("datasets = [\n")
    with pytest.raises(UserError, match="not valid TOML"):
        load_experiment(bad)


def test_cli_config_error_exit_code_and_nothing_written(experiment_file, tmp_path):
    path = experiment_file(report_seeds='"zero"')
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(path), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("tru: error:") and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_the_model_cache_may_be_a_uri_and_one_that_cannot_be_written_is_refused(experiment_file, tmp_path):
    exp = load_experiment(experiment_file(cache_dir='"memory://tests-experiment/models"'))
    assert exp.cache_dir == "memory://tests-experiment/models"
    assert load_experiment(experiment_file(cache_dir='"relative/cache"')).cache_dir.endswith("/relative/cache")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    path = experiment_file(cache_dir=f'"file://{blocker}/models"')
    with pytest.raises(UserError, match=rf"^{path}: cache_dir file://{blocker}/models: cannot be written"):
        load_experiment(path)
    with pytest.raises(UserError, match=r"cache_dir file://models: a file:// URI needs an absolute path"):
        load_experiment(experiment_file(cache_dir='"file://models"'))
    local = experiment_file(cache_dir=f'"{blocker}/models"')  # a local folder is checked too, before any work
    with pytest.raises(UserError, match=rf"^{local}: cache_dir {blocker}/models: {blocker} is a file, not a folder$"):
        load_experiment(local)
