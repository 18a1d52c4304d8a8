"""The two reference points of every comparison: exact retraining and graph surgery."""

from __future__ import annotations

from methods.base import METHODS, Budget, UnlearningMethod


@METHODS.register("retrain")
class Retrain(UnlearningMethod):
    """Train from scratch on ``D_r`` with the original config and seed (the exact answer)."""

    def unlearn(self, model, task, budget: Budget):
        if budget.train_from_scratch is None:
            raise ValueError("retrain needs budget.train_from_scratch")
        return budget.train_from_scratch(task.retain)


@METHODS.register("graph_edit")
class GraphEdit(UnlearningMethod):
    """The original parameters on ``G_r``, no update: what graph surgery alone removes."""

    def unlearn(self, model, task, budget: Budget):
        return model
