"""One unlearning job -> one result record.

``prepare(...)`` trains (or loads from the cache) the original model on D and the
retrained reference on D_r, and measures both once; ``run_method(...)`` copies the
original, lets a method unlearn, and measures it the same way. Measures (all on the
retained graph G_r, retained training items excluded, removed users left out):

* retain utility: validation and test Recall / NDCG @10, @20 of retained users;
* forget efficacy: Recall / NDCG @10, @20 with D_f as the truth (lower = forgotten);
* ``item_exposure@20`` (item regime): share of retained users' top-20 slots held by
  the target items;
* ``agreement@20``: mean per-user Jaccard of top-20 lists against the retrained model;
* ``mia_auc``: the membership audit of :mod:`harness.protocol.audit`;
* costs: ``unlearn_seconds``, ``retrain_seconds``, ``speedup``, ``updated_fraction``.
The original model is measured on the full graph G (what it knew).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
from dataclasses import dataclass

import numpy as np
import torch

from backbones.base import Backbone, eval_embeddings
from backbones.blocks.csr import dense_rows, pair_mask
from backbones.blocks.graph import UserItemGraph
from backbones import BACKBONES
from harness.core.versions import modules_of, record_code_version
from harness.data.datasets import Dataset
from harness.protocol import records
from harness.protocol.audit import AUDIT_SIZE, AuditSample, audit_sample, membership_auc
from harness.protocol.evaluation import embedding_scorer, metrics_from_scores
from harness.protocol.models import train_backbone
from methods.base import METHODS, Budget, ForgetTask, UnlearningMethod

K = 20


@dataclass
class Measure:
    metrics: dict
    top: torch.Tensor  # [U, K] top-K items of every user (retained users meaningful)
    mia_auc: float


def measure(model: Backbone, graph: UserItemGraph, dataset: Dataset, task: ForgetTask, sample: AuditSample) -> Measure:
    """All figures of one model on ``graph`` (see the module docstring)."""
    model.eval()
    users, items = eval_embeddings(model, graph)
    exclude = UserItemGraph(torch.from_numpy(task.retain), task.n_users, task.n_items).user_items_csr()
    removed = torch.from_numpy(task.removed_users)

    def truth(pairs: np.ndarray) -> torch.Tensor:
        pairs = torch.from_numpy(pairs)
        if len(removed):
            pairs = pairs[~torch.isin(pairs[:, 0], removed)]
        return pair_mask(pairs, task.n_users, task.n_items)

    score = embedding_scorer(users, items)
    out = {}
    for name, pairs in (("retain_valid", dataset.valid), ("retain_test", dataset.test)):
        for key, value in metrics_from_scores(score, exclude, truth(pairs)).items():
            if key.split("@")[0] in ("recall", "ndcg"):
                out[f"{name}_{key}"] = value
    forget_truth = pair_mask(torch.from_numpy(task.forget), task.n_users, task.n_items)
    for key, value in metrics_from_scores(score, exclude, forget_truth).items():
        if key.split("@")[0] in ("recall", "ndcg"):
            out[f"forget_{key}"] = value
    rows = task.retained_users()
    top = torch.empty(task.n_users, K, dtype=torch.long)
    for start in range(0, len(rows), 1024):
        part = rows[start : start + 1024]
        masked = score(part).masked_fill(dense_rows(exclude, part).to(users.device), float("-inf"))
        top[part] = masked.topk(K, dim=1).indices.cpu()
    if task.regime == "item":
        targets = torch.zeros(task.n_items, dtype=torch.bool)
        targets[torch.from_numpy(task.items)] = True
        out["item_exposure@20"] = float(targets[top[rows]].float().mean())
    return Measure(out, top, membership_auc(users, items, sample))


def agreement(top: torch.Tensor, reference: torch.Tensor, rows: torch.Tensor) -> float:
    """Mean Jaccard ``|A & B| / |A | B|`` of per-user top-K lists ``[U, K]`` over ``rows``."""
    a, b = top[rows], reference[rows]
    inter = (a.unsqueeze(2) == b.unsqueeze(1)).any(2).sum(1).float()
    return float((inter / (2 * a.shape[1] - inter)).mean())


@dataclass
class References:
    """The original and retrained models of one (dataset, backbone, seed, task)."""

    dataset: Dataset
    backbone: str
    seed: int
    task: ForgetTask
    original: Backbone
    retrained: Backbone
    retrain_seconds: float
    original_measure: Measure
    retrain_measure: Measure
    sample: AuditSample
    hparams: dict
    train_overrides: dict
    cache_dir: object


def retained_valid(dataset: Dataset, task: ForgetTask) -> np.ndarray:
    """Validation pairs of the users that remain (deleted users guide no retraining)."""
    if len(task.removed_users) == 0:
        return dataset.valid
    return dataset.valid[~np.isin(dataset.valid[:, 0], task.removed_users)]


def train_reference(dataset, backbone, seed, task: ForgetTask | None = None, **kwargs):
    """The original model (``task`` None) or the model retrained from scratch on the
    task's ``D_r``, early-stopped on the remaining users' validation pairs (cached;
    ``kwargs`` go to :func:`harness.protocol.models.train_backbone`)."""
    if task is None:
        return train_backbone(dataset, backbone, seed, **kwargs)
    return train_backbone(dataset, backbone, seed, train_pairs=task.retain, valid_pairs=retained_valid(dataset, task),
                          **kwargs)


def prepare(dataset, backbone, task, seed, hparams=None, train_overrides=None, cache_dir=None,
            device=None, progress=True, audit_size=AUDIT_SIZE) -> References:
    """Train/load the original and the retrained reference and measure both."""
    kwargs = dict(hparams=hparams, train_overrides=train_overrides, device=device, cache_dir=cache_dir, progress=progress)
    original = train_reference(dataset, backbone, seed, **kwargs)
    retrained = train_reference(dataset, backbone, seed, task, **kwargs)
    sample = audit_sample(dataset, task, audit_size, seed)
    full = UserItemGraph(torch.from_numpy(dataset.train), dataset.n_users, dataset.n_items)
    return References(
        dataset, backbone, seed, task, original.model, retrained.model, retrained.meta["train_seconds"],
        measure(original.model, full, dataset, task, sample),
        measure(retrained.model, task.retain_graph(), dataset, task, sample),
        sample, hparams or {}, train_overrides or {}, cache_dir,
    )


def updated_fraction(before: Backbone, after: Backbone) -> float:
    """Share of parameter entries that changed."""
    old, new = dict(before.named_parameters()), dict(after.named_parameters())
    total = sum(p.numel() for p in old.values())
    changed = sum(int((old[k].detach() != new[k].detach()).sum()) for k in old)
    return changed / total


def code_version(backbone: str, method: str) -> str:
    """The code version of a record of ``method`` on ``backbone``: a hash of the sources it
    depends on (:mod:`harness.core.versions`)."""
    return record_code_version(modules_of(BACKBONES.get(backbone), Backbone),
                               modules_of(METHODS.get(method), UnlearningMethod))


def run_method(refs: References, method: str, params: dict | None = None, budget: Budget = Budget()) -> dict:
    """Run one method on a copy of the original model with the shared part of ``budget``
    (its seed and trainer are the job's); return the result record (:mod:`harness.protocol.records`)."""
    started = dt.datetime.now(dt.timezone.utc).isoformat()
    task = refs.task
    record = records.head(refs.dataset.name, refs.backbone, refs.seed, task.regime, task.selection, task.ratio,
                          method, params or {})
    try:
        instance = METHODS.get(method)(**(params or {}))
        record["params"] = json.dumps(instance.params, sort_keys=True)

        def from_scratch(pairs):
            return train_backbone(refs.dataset, refs.backbone, refs.seed, refs.hparams, refs.train_overrides,
                                  train_pairs=pairs, valid_pairs=retained_valid(refs.dataset, task),
                                  device=refs.original.device, cache_dir=refs.cache_dir, progress=False).model

        budget = budget.model_copy(update={"seed": refs.seed, "train_from_scratch": from_scratch})
        model = copy.deepcopy(refs.original)
        start = time.perf_counter()
        model = instance.unlearn(model, task, budget)
        seconds = time.perf_counter() - start
        if method == "retrain":
            seconds = refs.retrain_seconds  # a cached reference: report what training took
        m = measure(model, task.retain_graph(), refs.dataset, task, refs.sample)
        record |= m.metrics
        for prefix, ref in (("original", refs.original_measure), ("retrain", refs.retrain_measure)):
            for key, value in ref.metrics.items():
                if key in records.REFERENCE_FIGURES:
                    record[f"{prefix}_{key}"] = value
        record["agreement@20"] = agreement(m.top, refs.retrain_measure.top, task.retained_users())
        record["mia_auc"] = m.mia_auc
        record["retrain_mia_auc"] = refs.retrain_measure.mia_auc
        record["original_mia_auc"] = refs.original_measure.mia_auc
        record["unlearn_seconds"] = seconds
        record["retrain_seconds"] = refs.retrain_seconds
        record["speedup"] = refs.retrain_seconds / max(seconds, 1e-9)
        record["updated_fraction"] = updated_fraction(refs.original, model)
        record["decisions"] = json.dumps(instance.summary(), sort_keys=True, default=str)
    except Exception as exc:  # a failing method is a record, not a crash of the run
        record["status"], record["error"] = "error", f"{type(exc).__name__}: {exc}"
    record["data_fingerprint"] = refs.dataset.fingerprint
    record["code_version"] = code_version(refs.backbone, method) if method in METHODS.names() else ""
    record["started_at"] = started
    record["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat()
    return record
