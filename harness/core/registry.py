"""Name -> class registries filled by a decorator and by package entry points.

Built-ins register with the same decorator a third party uses; outside packages add
an entry point in the group (``tru.methods``, ``tru.backbones``) whose value is the
class. Entry points are loaded lazily, the first time a name is looked up or listed.
The package that owns a registry calls :meth:`Registry.seal_builtins` once its own
classes are registered, so "the built-ins" (an experiment's ``methods = "all"``) never
grow with whatever else happens to be installed.
"""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points
from typing import Callable, TypeVar

from harness.core.errors import UserError

T = TypeVar("T")


class Registry:
    """A registry of plugins of one ``kind`` (used in error messages)."""

    def __init__(self, kind: str, entry_point_group: str):
        self.kind = kind
        self.group = entry_point_group
        self._items: dict[str, type] = {}
        self._builtins: tuple[str, ...] = ()
        self._entry_points_loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: ``@REGISTRY.register("name")``; sets ``cls.name``."""

        def decorate(cls):
            if name in self._items and self._items[name] is not cls:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            cls.name = name
            self._items[name] = cls
            return cls

        return decorate

    def _load_entry_points(self):
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.group):
            cls = ep.load()
            if ep.name not in self._items:
                self.register(ep.name)(cls)

    def seal_builtins(self) -> None:
        """Record the names registered so far as the built-ins (called by the package that
        owns the registry, after importing its own modules)."""
        self._builtins = tuple(sorted(self._items))

    def names(self) -> list[str]:
        """Every registered name: built-ins, decorated plugins and entry points."""
        self._load_entry_points()
        return sorted(self._items)

    def builtin_names(self) -> list[str]:
        """The names :meth:`seal_builtins` recorded: no plugin, however it registered."""
        return list(self._builtins)

    def name_of(self, cls: type) -> str:
        """The name ``cls`` is registered under (loading the entry points first, so a
        plugin class imported directly from its package is found), or ``""``."""
        self._load_entry_points()
        return next((name for name, item in self._items.items() if item is cls), "")

    def get(self, name: str) -> type:
        if name not in self._items:
            self._load_entry_points()
        if name not in self._items:
            raise UserError(f"unknown {self.kind} '{name}' (valid: {', '.join(self.names())})")
        return self._items[name]

    def summary(self, name: str) -> str:
        """The first paragraph of the class docstring of ``name``, on one line ("" if none)."""
        cls = self.get(name)
        doc = inspect.getdoc(cls) if cls.__doc__ else ""  # not a docstring inherited from a base
        return " ".join((doc or "").split("\n\n")[0].split())

    def describe(self, name: str) -> dict:
        """``name``, its :meth:`summary` and what the class's ``describe()`` says of its
        hyperparameters."""
        return {"name": name, "summary": self.summary(name), "hyperparameters": self.get(name).describe()}
