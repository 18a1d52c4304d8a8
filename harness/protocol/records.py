"""The result record: one home for its fields, its Parquet schema, the identity that keys
resume, and the figures derived from it (the objectives of a sweep and their targets).

A record is a flat ``dict`` made by :func:`harness.protocol.unlearning.run_method` (or
:func:`error_record` for a job that produced no measurements): the identity
(:data:`IDENTITY`), ``status`` (``ok`` / ``error``) and ``error``, the measurements
(:data:`METRICS`, the references' figures :data:`REFERENCES`, :data:`SCALARS`), and
provenance. Sweeps add ``sweep``, ``trial_id``, ``config`` and ``split``. The model host
adds ``settings`` (JSON: the effective training settings, the backbone hyperparameters,
the shared budget, the audit size) and ``forget_pairs`` (``|D_f|``), so a report states
what its figures were measured under. A record of a sequence of requests carries its
``step`` (1, 2, ...; null for a single request), and ``forget_pairs`` is then every
pair deleted so far.
"""

from __future__ import annotations

import hashlib
import json
from typing import Callable, NamedTuple

import pyarrow as pa

from harness.core.errors import UserError

#: what a record is about: one method with its params on one forget task of one model
IDENTITY = ("dataset", "backbone", "seed", "regime", "selection", "ratio", "method", "params")
#: retained quality (validation and test) and forgetting (``D_f`` as the truth); item
#: deletion: the target items' exposure and their held-out test pairs as the truth;
#: fairness: test NDCG@20 of active and inactive users and their gap (harness.protocol.fairness)
METRICS = tuple(f"{split}_{m}@{k}" for split in ("retain_valid", "retain_test", "forget")
                for m in ("ndcg", "recall") for k in (10, 20)) + ("item_exposure@20", "target_test_recall@20",
                                                                  "retain_test_ndcg@20_active",
                                                                  "retain_test_ndcg@20_inactive", "fairness_gap@20",
                                                                  "fairness_active_users")
#: the figures of the original, the retrained and the second retrained model in every record
REFERENCE_FIGURES = ("forget_ndcg@10", "forget_ndcg@20", "forget_recall@10", "forget_recall@20", "item_exposure@20",
                     "target_test_recall@20", "retain_valid_ndcg@20", "retain_valid_recall@20", "retain_test_ndcg@20",
                     "retain_test_recall@20", "retain_test_ndcg@20_active", "retain_test_ndcg@20_inactive",
                     "fairness_gap@20")
REFERENCE_MODELS = ("original", "retrain", "retrain2")
REFERENCES = tuple(f"{who}_{m}" for who in REFERENCE_MODELS for m in REFERENCE_FIGURES)
#: distance to retraining (each also of the original and the second retrain), the audit, costs
SCALARS = ("forget_gap@20", "fairness_gap_vs_retrain@20", "forget_ks", "original_forget_ks", "retrain2_forget_ks",
           "agreement@20", "original_agreement@20", "retrain2_agreement@20",
           "mia_auc", "original_mia_auc", "retrain_mia_auc", "retrain2_mia_auc",
           "privleak", "privleak_low", "privleak_high", "original_privleak", "original_privleak_low",
           "original_privleak_high", "retrain2_privleak", "retrain2_privleak_low", "retrain2_privleak_high",
           "mia_diff_auc", "retrain_mia_diff_auc", "audit_pairs", "audit_seconds", "measure_seconds",
           "unlearn_seconds", "retrain_seconds", "speedup", "updated_fraction", "train_seconds_total",
           "own_original_retain_valid_ndcg@20", "own_original_retain_test_ndcg@20")

SCHEMA = pa.schema(
    [("run_key", pa.string()), ("experiment", pa.string()), ("sweep", pa.string()), ("trial_id", pa.string()),
     ("split", pa.string()), ("config", pa.string()),
     ("dataset", pa.string()), ("backbone", pa.string()), ("seed", pa.int64()), ("regime", pa.string()),
     ("selection", pa.string()), ("ratio", pa.float64()), ("method", pa.string()), ("params", pa.string()),
     ("status", pa.string()), ("error", pa.string()), ("audit_split", pa.string())]
    + [(name, pa.float64()) for name in METRICS + REFERENCES + SCALARS]
    + [("decisions", pa.string()), ("settings", pa.string()), ("forget_pairs", pa.int64()), ("step", pa.int64()),
       ("data_fingerprint", pa.string()), ("code_version", pa.string()),
       ("device", pa.string()), ("node", pa.string()), ("restarted", pa.bool_()),
       ("started_at", pa.string()), ("finished_at", pa.string())]
)

#: everything a record's figures depend on; their hash is the ``run_key`` that resume matches
RUN_IDENTITY = ("dataset", "backbone", "seed", "regime", "method", "params", "training", "hparams", "budget",
                "audit_size", "references")


def head(dataset: str, backbone: str, seed: int, regime: str, selection: str, ratio: float, method: str,
         params: dict) -> dict:
    """The identity part of a record, ``status: ok`` (``params`` as sorted JSON)."""
    return {"dataset": dataset, "backbone": backbone, "seed": seed, "regime": regime, "selection": selection,
            "ratio": ratio, "method": method, "params": json.dumps(params, sort_keys=True), "status": "ok",
            "error": ""}


def error_record(identity: dict, message: str) -> dict:
    """The record of a job that produced no measurements: its identity and the error."""
    return head(**identity) | {"status": "error", "error": message}


def run_key(fields: dict, code: str, extra: dict | None = None) -> str:
    """The hash (20 hex digits) of :data:`RUN_IDENTITY` in ``fields``, the record's code
    version ``code`` (:func:`harness.protocol.unlearning.code_version`) and ``extra``
    (the fields a sweep adds)."""
    if set(fields) != set(RUN_IDENTITY):
        raise ValueError(f"run identity needs exactly {RUN_IDENTITY}, got {sorted(fields)}")
    identity = dict(fields) | {"code": code} | ({"extra": extra} if extra else {})
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


# ---------------------------------------------------------------------------- objectives
# What a sweep may optimise, read from a record. They live with the record because the
# experiment file names them (``[tune].objectives``, validated before any work) and the
# sweep and the reports read the same derived figures. None reads the test split.

class Objective(NamedTuple):
    """``value(record)``, better when larger (``mode = "max"``) or smaller; ``target(record)``:
    the retrained model's value, which the rule choosing a configuration aims at."""

    name: str
    mode: str  # "max" | "min"
    value: Callable[[dict], float]
    target: Callable[[dict], float]


def _field(name: str) -> Callable[[dict], float]:
    return lambda record: float(record.get(name, float("nan")))


def _absolute(name: str) -> Callable[[dict], float]:
    return lambda record: abs(float(record.get(name, float("nan"))))


def _zero(record: dict) -> float:
    return 0.0


#: two-sided by design: the goal of unlearning is the retrained model's behaviour, not
#: zero forgetting, so no objective rewards burying D_f below where retraining puts it
OBJECTIVES = {
    o.name: o
    for o in [
        Objective("retain_valid_ndcg@20", "max", _field("retain_valid_ndcg@20"), _field("retrain_retain_valid_ndcg@20")),
        Objective("retain_valid_recall@20", "max", _field("retain_valid_recall@20"),
                  _field("retrain_retain_valid_recall@20")),
        Objective("forget_ks", "min", _field("forget_ks"), _zero),
        Objective("abs_forget_gap@20", "min", _absolute("forget_gap@20"), _zero),
        Objective("abs_privleak", "min", _absolute("privleak"), _zero),
        Objective("agreement@20", "max", _field("agreement@20"), lambda record: 1.0),
        Objective("unlearn_seconds", "min", _field("unlearn_seconds"), _zero),
    ]
}
DEFAULT_OBJECTIVES = ("retain_valid_ndcg@20", "forget_ks")


def objectives(names: list[str]) -> list[Objective]:
    """The named objectives; an unknown name is a :class:`UserError` listing the valid ones."""
    for name in names:
        if name not in OBJECTIVES:
            raise UserError(f"tune.objectives: unknown objective '{name}' (valid: {', '.join(OBJECTIVES)})")
    if len(set(names)) != len(names):
        raise UserError(f"tune.objectives: repeated objective in {names}")
    return [OBJECTIVES[n] for n in names]
