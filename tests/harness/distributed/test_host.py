import harness.distributed.host as host_module
from harness.distributed.experiment import expand, load_experiment
from harness.distributed.host import ModelHost
from harness.data.datasets import load_dataset


def make_host(exp):
    job = expand(exp)[0]
    return ModelHost(load_dataset(job.dataset), job.backbone, job.seed, training=exp.training, hparams={}, audit_size=exp.audit_size,
                     cache_dir=exp.cache_dir, plugins=exp.plugins, num_threads=1, budget=exp.budget,
                     experiment=exp.name)


def test_host_prepares_each_task_once_and_stamps_records(experiment_file, monkeypatch):
    exp = load_experiment(experiment_file())
    host = make_host(exp)
    calls = []
    real = host_module.prepare
    monkeypatch.setattr(host_module, "prepare", lambda *a, **k: calls.append(a[2].regime) or real(*a, **k))
    records = [host.run(job) for job in expand(exp)]
    assert calls == ["interaction", "user"]  # references kept between jobs of one task
    assert [r["run_key"] for r in records] == [j.run_key for j in expand(exp)]
    assert all(r["status"] == "ok" and r["device"] == "cpu" and r["experiment"] == "exp" for r in records)
    assert host.info()["threads"] == 1


def test_a_task_that_cannot_be_built_is_an_error_record(experiment_file):
    exp = load_experiment(experiment_file(regimes='[{regime = "user", ratio = 0.001}]'))
    record = make_host(exp).run(expand(exp)[0])
    assert record["status"] == "error" and "selects nothing" in record["error"]
    assert record["method"] == "graph_edit" and record["regime"] == "user"
