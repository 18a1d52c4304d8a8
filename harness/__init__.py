"""The evaluation harness, one sub-package per layer (each imports only the layers below it):

``core`` (errors, registries, seeding, devices, code versions) < ``data`` (datasets, deletion
regimes) < ``protocol`` (training, evaluation, audit, unlearning records) < ``distributed``
(experiments, actors, runner, results store, Ray set-up) < ``cli`` (the composition root).
``backbones`` and ``methods`` sit between ``core`` and ``data``; ``reports`` and ``tuning``
between ``distributed`` and ``cli``. The contract in ``pyproject.toml`` checks it
(``lint-imports``); ``docs/architecture.md`` draws it.
"""
