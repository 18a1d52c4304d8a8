"""What a sweep optimises: named objectives read from a result record.

All default objectives are computed without the test split: retained quality on the
validation pairs, forgetting on ``D_f`` itself, the audit against the retrained
reference, and cost.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from harness.errors import UserError


class Objective(NamedTuple):
    name: str
    mode: str  # "max" | "min"
    value: Callable[[dict], float]


def _field(name: str) -> Callable[[dict], float]:
    return lambda record: float(record.get(name, float("nan")))


OBJECTIVES = {
    o.name: o
    for o in [
        Objective("retain_valid_ndcg@20", "max", _field("retain_valid_ndcg@20")),
        Objective("retain_valid_recall@20", "max", _field("retain_valid_recall@20")),
        Objective("forget_recall@20", "min", _field("forget_recall@20")),
        Objective("forget_ndcg@20", "min", _field("forget_ndcg@20")),
        Objective("mia_gap", "min", lambda r: abs(float(r.get("mia_auc", float("nan"))) - float(r.get("retrain_mia_auc", float("nan"))))),
        Objective("agreement@20", "max", _field("agreement@20")),
        Objective("unlearn_seconds", "min", _field("unlearn_seconds")),
    ]
}


def objectives(names: list[str]) -> list[Objective]:
    """The named objectives; an unknown name is a :class:`UserError` listing the valid ones."""
    for name in names:
        if name not in OBJECTIVES:
            raise UserError(f"tune.objectives: unknown objective '{name}' (valid: {', '.join(OBJECTIVES)})")
    if len(set(names)) != len(names):
        raise UserError(f"tune.objectives: repeated objective in {names}")
    return [OBJECTIVES[n] for n in names]
