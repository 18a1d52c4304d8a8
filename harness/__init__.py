"""The evaluation harness: datasets, graphs, training, evaluation, CLI."""
