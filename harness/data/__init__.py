"""Datasets (MMRec folders, validated and fingerprinted) and the deletion regimes that turn
one into a ``ForgetTask``. May import ``harness.core``, ``backbones`` and ``methods``
(for the ``ForgetTask`` contract)."""
