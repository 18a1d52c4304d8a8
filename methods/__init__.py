"""Unlearning methods as plugins: the contract (:mod:`methods.base`), the built-ins and
their registry. May import ``backbones`` and ``harness.core`` only, never the protocol
that runs them.

``METHODS.get(name)`` returns a class; outside packages register through the
``tru.methods`` entry-point group or ``@METHODS.register("name")``.
``METHODS.builtin_names()`` are the methods registered here, before any plugin.
"""

from methods.base import METHODS, Budget, ForgetTask, HyperParameter, ShardJob, TrainedShards, UnlearningMethod  # noqa: F401
from methods import exact, influence, receraser, redraw, reverse, sisa, tru, tru_v2  # noqa: E402,F401  (register the built-ins)

METHODS.seal_builtins()  # what an experiment's methods = "all" means; plugins come after

__all__ = ["METHODS", "Budget", "ForgetTask", "HyperParameter", "ShardJob", "TrainedShards", "UnlearningMethod"]
