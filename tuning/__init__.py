"""Ray Tune + Optuna multi-objective sweeps of a method's declared hyperparameters. May import
``reports`` (Pareto fronts), ``harness.distributed`` and everything below it."""
