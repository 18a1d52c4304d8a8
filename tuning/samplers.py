"""Optuna samplers that survive Ray Tune's pickling of the search algorithm.

Ray Tune pickles its ``TuneConfig`` (and so ``OptunaSearch`` and its sampler) into
``tuner.pkl``. Optuna 5.1's genetic-algorithm base (``optuna/samplers/_ga/_base.py``,
``BaseGASampler.__init__``) holds a ``threading.Lock`` in ``_thread_lock`` with no
``__getstate__``, so a plain ``NSGAIISampler`` cannot be pickled. This subclass drops
the lock when pickled and makes a fresh one when unpickled; nothing else changes.
"""

from __future__ import annotations

import threading

from optuna.samplers import NSGAIISampler


class PicklableNSGAIISampler(NSGAIISampler):
    """``NSGAIISampler`` whose thread lock (if the installed Optuna has one) is not pickled."""

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()
