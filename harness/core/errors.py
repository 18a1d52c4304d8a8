"""User-facing errors: one clear line, exit code 2, no traceback (see `harness.cli`)."""

from __future__ import annotations

from pydantic import ValidationError


class UserError(Exception):
    """A mistake in the user's input (a file, a key, a value); the message names it."""


class Interrupted(Exception):
    """A run, sweep or comparison stopped (Ctrl-C) before it finished; what finished is
    stored and ``--resume`` goes on. The CLI prints one line and exits 130."""


def one_line(exc: ValidationError, template: str) -> UserError:
    """The first error of a pydantic validation as a :class:`UserError`.

    ``template`` is formatted with ``key`` (the dotted location, ``(top level)`` when
    none), ``msg`` (pydantic's message) and ``got`` (`` (got VALUE)`` for a wrong value,
    empty for a missing key or a table), e.g. ``"exp.toml: {key}: {msg}{got}"``.
    """
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    shown = first["type"] != "missing" and not isinstance(first.get("input"), dict)
    got = f" (got {first['input']!r})" if shown else ""
    return UserError(template.format(key=key, msg=first["msg"], got=got))
