import pickle

import optuna
from ray import cloudpickle

from tuning.samplers import PicklableNSGAIISampler


def test_nsga2_sampler_pickles_and_still_samples_the_same_way():
    sampler = PicklableNSGAIISampler(seed=3)
    restored = cloudpickle.loads(cloudpickle.dumps(sampler))
    assert pickle.loads(pickle.dumps(restored)) is not None

    def values(s):
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=s)
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)), n_trials=6)
        return [t.params for t in study.trials]

    assert values(restored) == values(PicklableNSGAIISampler(seed=3))
