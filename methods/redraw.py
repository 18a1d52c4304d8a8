"""``redraw``: TRU's cold-start probe as a baseline of its own (no training).

User deletion: the deleted users' ``id``-branch rows are re-drawn from the backbone's
initialisation; item deletion: the target items' ``id``-branch rows. The model then runs
on ``G_r`` like ``graph_edit``: a deleted user or a target item looks new, with no edges
and a fresh ID embedding. Where there is nothing to re-draw (interaction deletion and
explicit requests, which delete no whole user or item, or a backbone without ``id`` rows
of that kind, such as MIG-GT's items), it returns graph_edit's model and says so in its
decisions. Rows are drawn from torch's RNG seeded with the job's seed.
"""

from __future__ import annotations

import torch

from harness.core.seeding import seeded
from methods.base import METHODS, Budget, UnlearningMethod


@METHODS.register("redraw")
class Redraw(UnlearningMethod):
    """Re-draw the deleted users' or target items' ID rows on G_r, no training (graph_edit elsewhere)."""

    def unlearn(self, model, task, budget: Budget):
        kind = {"user": "user", "item": "item"}.get(task.regime)
        tables = [s.name for s in model.parameter_specs() if s.rows == kind and s.branch == "id"] if kind else []
        if not tables:
            why = f"{task.regime} deletion removes no whole user or item" if kind is None else \
                f"{type(model).__name__} has no id rows of {kind}s"
            self.decisions = {"redrawn_rows": 0, "tables": [], "note": f"{why}: graph_edit's model"}
            return model
        index = torch.from_numpy(task.users if kind == "user" else task.items)
        with seeded(budget.seed, model.device):
            model.redraw_rows(kind, index)
        self.decisions = {"redrawn_rows": len(index), "tables": tables}
        return model
