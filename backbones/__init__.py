"""Multimodal recommenders as plain torch modules, and their registry.

``BACKBONES.get(name)`` returns a class; third-party backbones register through the
``tru.backbones`` entry-point group or ``@BACKBONES.register("name")``.
"""

from harness.core.registry import Registry

BACKBONES = Registry("backbone", "tru.backbones")

from backbones import lightgcn, mgcn, miggt, pyg  # noqa: E402,F401  (register the built-ins)
from backbones.base import Backbone, Batch, ParamSpec  # noqa: E402

__all__ = ["BACKBONES", "Backbone", "Batch", "ParamSpec"]
