"""Ray Tune + Optuna multi-objective sweeps (built in the tuning issue)."""
