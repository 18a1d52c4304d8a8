"""A method's search space, from its declared hyperparameters, as Optuna distributions.

Dimensions: every name in ``method.tuned`` (default: every hyperparameter with a range)
that the method declares. A ``float`` range is a ``FloatDistribution(low, high, log)``,
an ``int`` range an ``IntDistribution``, a ``bool`` a ``CategoricalDistribution``. A
``per_branch`` hyperparameter (TRU's ``modality_scales``) becomes one float dimension
``name.branch`` per branch the backbone names; :func:`params_from` joins them back into
the JSON object the method takes. The experiment's ``[tune.space]`` overrides a
dimension's ``low``/``high``/``log``, fixes it (``value``), lists ``choices``, or adds a
declared hyperparameter that is not searched by default.
"""

from __future__ import annotations

import json

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from harness.core.errors import UserError


def search_space(method_cls, branches: list[str], overrides: dict | None = None) -> tuple[dict, dict]:
    """``(distributions, fixed)``: Optuna distributions by dimension name, and the
    hyperparameters fixed by the overrides."""
    declared = {h.name: h for h in method_cls.hyperparameters}
    overrides = dict(overrides or {})
    for name in overrides:
        if name not in declared:
            raise UserError(f"tune.space.{name}: not a hyperparameter of '{method_cls.name}' (valid: {', '.join(declared)})")
    names = method_cls.searched()
    names += [n for n in overrides if n not in names]
    space, fixed = {}, {}
    for name in names:
        h, override = declared[name], overrides.get(name, {})
        if "value" in override:
            fixed[name] = h.validate(method_cls.name, override["value"])
            continue
        dims = [f"{name}.{b}" for b in branches] if h.per_branch else [name]
        for dim in dims:
            space[dim] = _distribution(h, override, f"tune.space.{name}")
    if not space:
        raise UserError(f"method '{method_cls.name}': nothing to search (no hyperparameter with a range)")
    return space, fixed


def _distribution(h, override: dict, key: str) -> BaseDistribution:
    unknown = set(override) - {"low", "high", "log", "choices"}
    if unknown:
        raise UserError(f"{key}: unknown field '{sorted(unknown)[0]}' (valid: low, high, log, choices, value)")
    if "choices" in override:
        return CategoricalDistribution(list(override["choices"]))
    if h.kind is bool:
        return CategoricalDistribution([False, True])
    low, high, log = override.get("low", h.low), override.get("high", h.high), override.get("log", h.log)
    if low is None or high is None or not low < high or (log and low <= 0):
        raise UserError(f"{key}: needs low < high (log: low > 0), got low={low}, high={high}, log={log}")
    if h.kind is int:
        return IntDistribution(int(low), int(high), log=log)
    return FloatDistribution(float(low), float(high), log=log)


def params_from(config: dict, method_cls, fixed: dict) -> dict:
    """A sampled ``config`` (dimension -> value) -> the method's hyperparameters."""
    declared = {h.name: h for h in method_cls.hyperparameters}
    params, branches = dict(fixed), {}
    for dim, value in config.items():
        name, _, branch = dim.partition(".")
        if declared[name].per_branch:
            branches.setdefault(name, {})[branch] = value
        else:
            params[name] = value
    for name, values in branches.items():
        params[name] = json.dumps(values, sort_keys=True)
    return params
