"""Unlearning methods and their plugin registry.

``METHODS.get(name)`` returns a class; outside packages register through the
``tru.methods`` entry-point group or ``@METHODS.register("name")``.
"""

from methods.base import METHODS, Budget, HyperParameter, UnlearningMethod  # noqa: F401
from methods import exact, reverse, tru  # noqa: E402,F401  (register the built-ins)

__all__ = ["METHODS", "Budget", "HyperParameter", "UnlearningMethod"]
