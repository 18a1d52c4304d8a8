"""Methods that fail on purpose, to test a harness's fault handling (not for studies).

Not registered by default: list ``"methods.faults"`` under ``plugins`` in an experiment.

- ``fault-raise``: raises ``RuntimeError`` (the record must say ``status: error``).
- ``fault-nan``: returns the model with its parameters set to NaN (a diverged update; the
  record must say so, not fail inside a measure).
- ``fault-sleep``: sleeps ``seconds``, then behaves like ``graph_edit`` (a job long
  enough to interrupt a run in the middle).
- ``fault-crash-once``: kills its own process (as an out-of-memory kill would) the first
  time it runs for a given ``marker`` file, then behaves like ``graph_edit``; a harness
  must restart the actor, retry the job and store its record once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from methods.base import METHODS, Budget, HyperParameter, UnlearningMethod


@METHODS.register("fault-raise")
class FaultRaise(UnlearningMethod):
    """Always raises."""

    def unlearn(self, model, task, budget: Budget):
        raise RuntimeError("fault-raise: raised on purpose")


@METHODS.register("fault-nan")
class FaultNaN(UnlearningMethod):
    """Returns the model with every parameter NaN."""

    def unlearn(self, model, task, budget: Budget):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float("nan"))
        return model


@METHODS.register("fault-crash-once")
class FaultCrashOnce(UnlearningMethod):
    """Kills its process on the first run for ``marker``; afterwards returns the model."""

    hyperparameters = (HyperParameter("marker", str, "", doc="file created before the crash"),)

    def unlearn(self, model, task, budget: Budget):
        marker = Path(self.params["marker"])
        if not marker.exists():
            marker.write_text("crashed once\n")
            os._exit(1)
        return model


@METHODS.register("fault-sleep")
class FaultSleep(UnlearningMethod):
    """Sleeps ``seconds``, then returns the model."""

    hyperparameters = (HyperParameter("seconds", float, 1.0, 0.0, 3600.0),)

    def unlearn(self, model, task, budget: Budget):
        time.sleep(self.params["seconds"])
        return model
