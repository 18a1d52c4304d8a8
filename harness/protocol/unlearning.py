"""One unlearning job -> one result record.

``prepare(...)`` trains (or loads from the cache) the original model on D, the
retrained reference on D_r and, on report seeds, a second retrained reference on the
same D_r from another initialisation (seed + :data:`RETRAIN2_SEED_OFFSET`), and measures
each once; ``run_method(...)`` copies the original, lets a method unlearn, and measures
it the same way. Measures (all on the retained graph G_r, retained training items
excluded, removed users left out):

* retain utility: validation and test Recall / NDCG @10, @20 of retained users; in item
  deletion the target items' held-out pairs are not retained truth;
* forget efficacy: Recall / NDCG @10, @20 with D_f as the truth;
* item deletion: ``item_exposure@20``, the share of retained users' top-20 slots held by
  the target items, and ``target_test_recall@20``, Recall@20 with the target items'
  test pairs as the truth;
* distance to retraining, two-sided: ``forget_gap@20 = forget_recall@20 -
  retrain_forget_recall@20`` (below 0: over-forgetting); ``forget_ks``, the two-sample
  Kolmogorov-Smirnov statistic (``scipy.stats.ks_2samp``) between the rank percentiles
  of all D_f pairs under the model and under the retrained model (0: ranked exactly as
  retraining does; the "forget quality" of TOFU / open-unlearning); ``agreement@20``,
  the mean per-user Jaccard of top-20 lists against the retrained model;
* fairness (:mod:`harness.protocol.fairness`): test NDCG@20 of the active (top 5% by
  training pairs in D) and the inactive retained users, their signed gap
  ``fairness_gap@20`` and ``fairness_gap_vs_retrain@20``, its distance to the retrained
  model's gap;
* the membership audit of :mod:`harness.protocol.audit`: ``mia_auc``, ``privleak`` with
  its bootstrap interval, the difference attack ``mia_diff_auc``;
* the noise floor: the same distances of the second retrain (``retrain2_*``); a method
  is as close as retraining itself when it is within them;
* costs: ``unlearn_seconds``, ``retrain_seconds``, ``speedup``, ``updated_fraction``,
  ``measure_seconds`` (all measures of the method) and ``audit_seconds`` (its audit:
  attack, PrivLeak bootstrap, difference attack; with the KS and agreement beside them);
  a partitioned method's ``unlearn_seconds`` is the wall time of retraining its affected
  shards (and aggregator), ``train_seconds_total`` the sum of their training seconds;
* a method with its own original (:meth:`methods.base.UnlearningMethod.start`, the
  sharded model of SISA or RecEraser): ``own_original_retain_{valid,test}_ndcg@20``;
  its ``updated_fraction`` counts against that original.
The original model is measured on the full graph G (what it knew).
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import ks_2samp

from backbones.base import Backbone, eval_embeddings
from backbones.blocks.csr import dense_rows, pair_mask
from backbones.blocks.graph import UserItemGraph
from backbones import BACKBONES
from harness.core.versions import modules_of, record_code_version
from harness.data.datasets import Dataset
from harness.protocol import records
from harness.protocol.audit import (AUDIT_SIZE, Audit, AuditSample, attack, audit_sample, difference_auc, privleak,
                                    rank_features)
from harness.protocol.evaluation import embedding_scorer, metrics_from_scores
from harness.protocol.fairness import active_users, group_figures
from harness.protocol.models import train_backbone
from harness.protocol.shards import ShardTrainer
from harness.protocol.training import TrainConfig, train
from methods.base import METHODS, Budget, ForgetTask, UnlearningMethod

K = 20
RETRAIN2_SEED_OFFSET = 1000  # the second retrain's initialisation seed: seed + this


@dataclass
class Measure:
    metrics: dict
    top: torch.Tensor  # [U, K] top-K items of every user (retained users meaningful)
    forget_percentiles: np.ndarray  # [|D_f|] rank percentile of every D_f pair among its user's candidates
    audit: Audit
    audit_seconds: float


def measure(model: Backbone, graph: UserItemGraph, dataset: Dataset, task: ForgetTask, sample: AuditSample) -> Measure:
    """All figures of one model on ``graph`` (see the module docstring)."""
    model.eval()
    users, items = eval_embeddings(model, graph)
    if not (torch.isfinite(users).all() and torch.isfinite(items).all()):
        raise FloatingPointError("the model's embeddings are not finite (a diverged update)")
    exclude = UserItemGraph(torch.from_numpy(task.retain), task.n_users, task.n_items).user_items_csr()
    removed = torch.from_numpy(task.removed_users)
    targets = torch.from_numpy(task.items) if task.regime == "item" else torch.zeros(0, dtype=torch.long)

    def retained(pairs: np.ndarray) -> torch.Tensor:
        pairs = torch.from_numpy(pairs)
        return pairs[~torch.isin(pairs[:, 0], removed) & ~torch.isin(pairs[:, 1], targets)]

    def truth(pairs: np.ndarray) -> torch.Tensor:
        return pair_mask(retained(pairs), task.n_users, task.n_items)

    def ranked(name: str, truth_mask: torch.Tensor) -> dict:
        return {f"{name}_{key}": value for key, value in metrics_from_scores(score, exclude, truth_mask).items()
                if key.split("@")[0] in ("recall", "ndcg")}

    score = embedding_scorer(users, items)
    out = ranked("retain_valid", truth(dataset.valid)) | ranked("retain_test", truth(dataset.test))
    out |= ranked("forget", pair_mask(torch.from_numpy(task.forget), task.n_users, task.n_items))
    out |= group_figures(score, exclude, retained(dataset.test), active_users(dataset.train, task.n_users), task.n_items)
    rows = task.retained_users()
    top = torch.empty(task.n_users, K, dtype=torch.long)
    for start in range(0, len(rows), 1024):
        part = rows[start : start + 1024]
        masked = score(part).masked_fill(dense_rows(exclude, part).to(users.device), float("-inf"))
        top[part] = masked.topk(K, dim=1).indices.cpu()
    if task.regime == "item":
        is_target = torch.zeros(task.n_items, dtype=torch.bool)
        is_target[targets] = True
        out["item_exposure@20"] = float(is_target[top[rows]].float().mean())
        target_test = torch.from_numpy(dataset.test)
        target_test = target_test[is_target[target_test[:, 1]]]
        out["target_test_recall@20"] = metrics_from_scores(
            score, exclude, pair_mask(target_test, task.n_users, task.n_items)).get("recall@20", float("nan"))
    percentiles = rank_features(users, items, torch.from_numpy(task.forget), exclude)[:, 2]
    start = time.perf_counter()
    audit = attack(rank_features(users, items, sample.pairs, exclude), sample)
    return Measure(out, top, percentiles, audit, time.perf_counter() - start)


def agreement(top: torch.Tensor, reference: torch.Tensor, rows: torch.Tensor) -> float:
    """Mean Jaccard ``|A & B| / |A | B|`` of per-user top-K lists ``[U, K]`` over ``rows``."""
    a, b = top[rows], reference[rows]
    inter = (a.unsqueeze(2) == b.unsqueeze(1)).any(2).sum(1).float()
    return float((inter / (2 * a.shape[1] - inter)).mean())


@dataclass
class References:
    """The original and retrained models of one (dataset, backbone, seed, task), measured;
    ``retrained2`` (the second retrain, the noise floor) only where it was asked for."""

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
    retrained2: Backbone | None = None
    retrain2_measure: Measure | None = None

    def shard_trainer(self) -> ShardTrainer:
        """``budget.train_shards`` of this task's jobs (:mod:`harness.protocol.shards`)."""
        return ShardTrainer(self.dataset, self.backbone, self.hparams, self.train_overrides, self.original.device,
                            self.cache_dir)

    def fitter(self):
        """``budget.fit``: train a model's trainable parameters in place with the
        backbone's training settings and this job's seed; returns the seconds it took."""
        config = TrainConfig.for_backbone(BACKBONES.get(self.backbone), **self.train_overrides)

        def fit(model: Backbone, pairs: np.ndarray, valid: np.ndarray) -> float:
            return train(model, torch.from_numpy(np.ascontiguousarray(pairs)), torch.from_numpy(np.ascontiguousarray(valid)),
                         config, self.seed, progress=False).seconds

        return fit

    def origin_measure(self, own: Backbone | None) -> Measure:
        """The measure of the model a method started from: the shared original's, or a
        method's own original (a partitioned method's sharded model) measured as the
        original is, on the full graph G."""
        if own is None:
            return self.original_measure
        full = UserItemGraph(torch.from_numpy(self.dataset.train), self.dataset.n_users, self.dataset.n_items)
        return measure(own, full, self.dataset, self.task, self.sample)

    def distances(self, m: Measure) -> dict:
        """How far a model measured as ``m`` is from the retrained one: ``forget_ks``,
        ``agreement@20``, ``mia_auc``, ``privleak`` and its interval (unprefixed names)."""
        retrain = self.retrain_measure
        leak, low, high = privleak(m.audit, retrain.audit, self.sample)
        ks = ks_2samp(m.forget_percentiles, retrain.forget_percentiles).statistic if len(m.forget_percentiles) else np.nan
        return {"forget_ks": float(ks), "agreement@20": agreement(m.top, retrain.top, self.task.retained_users()),
                "mia_auc": m.audit.auc, "privleak": leak, "privleak_low": low, "privleak_high": high}

    @functools.cached_property
    def figures(self) -> dict:
        """The references' fields of every record (:data:`records.REFERENCES` and the
        ``original_*`` / ``retrain_*`` / ``retrain2_*`` scalars), computed once per task."""
        out = {"retrain_mia_auc": self.retrain_measure.audit.auc,
               "retrain_mia_diff_auc": difference_auc(self.original_measure.audit, self.retrain_measure.audit,
                                                      self.sample),
               "retrain_seconds": self.retrain_seconds, "audit_pairs": float(self.sample.size),
               "audit_split": self.sample.split}
        for who, m in (("original", self.original_measure), ("retrain", self.retrain_measure),
                       ("retrain2", self.retrain2_measure)):
            if m is None:
                continue
            out |= {f"{who}_{k}": v for k, v in m.metrics.items() if k in records.REFERENCE_FIGURES}
            if who != "retrain":
                out |= {f"{who}_{k}": v for k, v in self.distances(m).items()
                        if f"{who}_{k}" in records.SCALARS}
        return out


def train_reference(dataset, backbone, seed, task: ForgetTask | None = None, **kwargs):
    """The original model (``task`` None) or the model retrained from scratch on the
    task's ``D_r``, early-stopped on the remaining users' validation pairs (cached;
    ``kwargs`` go to :func:`harness.protocol.models.train_backbone`)."""
    if task is None:
        return train_backbone(dataset, backbone, seed, **kwargs)
    return train_backbone(dataset, backbone, seed, train_pairs=task.retain, valid_pairs=task.retained_valid(),
                          **kwargs)


def prepare(dataset, backbone, task, seed, hparams=None, train_overrides=None, cache_dir=None,
            device=None, progress=True, audit_size=AUDIT_SIZE, report=False) -> References:
    """Train/load the original and the retrained reference and measure both. A ``report``
    task (a report seed) also gets the second retrain, from initialisation seed ``seed +``
    :data:`RETRAIN2_SEED_OFFSET`, and audits with test non-members (a development task:
    validation non-members; :func:`harness.protocol.audit.audit_sample`)."""
    kwargs = dict(hparams=hparams, train_overrides=train_overrides, device=device, cache_dir=cache_dir, progress=progress)
    original = train_reference(dataset, backbone, seed, **kwargs)
    retrained = train_reference(dataset, backbone, seed, task, **kwargs)
    sample = audit_sample(dataset, task, audit_size, seed, split="test" if report else "valid")
    full = UserItemGraph(torch.from_numpy(dataset.train), dataset.n_users, dataset.n_items)
    refs = References(
        dataset, backbone, seed, task, original.model, retrained.model, retrained.meta["train_seconds"],
        measure(original.model, full, dataset, task, sample),
        measure(retrained.model, task.retain_graph(), dataset, task, sample),
        sample, hparams or {}, train_overrides or {}, cache_dir,
    )
    if report:
        refs.retrained2 = train_reference(dataset, backbone, seed + RETRAIN2_SEED_OFFSET, task, **kwargs).model
        refs.retrain2_measure = measure(refs.retrained2, task.retain_graph(), dataset, task, sample)
    return refs


def updated_fraction(before: Backbone, after: Backbone) -> float:
    """Share of the state entries (parameters and buffers, BatchNorm's running statistics
    among them) that changed; a tensor the method added (TRU's item residual) counts in
    the total, and its nonzero entries as changed."""
    old, new = before.state_dict(), after.state_dict()
    total = sum(t.numel() for t in old.values()) + sum(t.numel() for k, t in new.items() if k not in old)
    changed = sum(int((old[k] != t).sum()) if k in old else int((t != 0).sum()) for k, t in new.items())
    return changed / total


def code_version(backbone: str, method: str) -> str:
    """The code version of a record of ``method`` on ``backbone``: a hash of the sources it
    depends on (:mod:`harness.core.versions`)."""
    return record_code_version(modules_of(BACKBONES.get(backbone), Backbone),
                               modules_of(METHODS.get(method), UnlearningMethod))


def run_method(refs: References, method: str, params: dict | None = None, budget: Budget = Budget()) -> dict:
    """Run one method on a copy of the original model with the shared part of ``budget``
    (its seed and trainer are the job's); return the result record (:mod:`harness.protocol.records`)."""
    return _unlearn_and_measure(refs, method, params, budget)[0]


def run_steps(steps: list[tuple[ForgetTask, References]], method: str, params: dict | None = None,
              budget: Budget = Budget()) -> list[dict]:
    """A sequence of deletion requests (:func:`harness.data.regimes.make_steps`): per step
    ``(request, references)``, the method unlearns ``request`` from the model the previous
    step left (step 1: from the original, or the method's own, ``start``), and the result
    is measured against that step's references (retrained on the cumulative ``D_r``, on
    every pair deleted so far). One record per step, with ``step``; after a failed step
    the later ones are error records naming it."""
    out, model, own = [], None, None
    for request, refs in steps:
        if out and model is None:
            record = records.error_record(_identity(refs, method, params), f"step {out[-1]['step']} failed")
        else:
            record, model, own = _unlearn_and_measure(refs, method, params, budget, request, model, own)
        out.append(record | {"step": request.step})
    return out


def _identity(refs: References, method: str, params: dict | None) -> dict:
    task = refs.task
    return {"dataset": refs.dataset.name, "backbone": refs.backbone, "seed": refs.seed, "regime": task.regime,
            "selection": task.selection, "ratio": task.ratio, "method": method, "params": params or {}}


def _unlearn_and_measure(refs: References, method: str, params: dict | None, budget: Budget,
                         request: ForgetTask | None = None, previous: Backbone | None = None,
                         own: Backbone | None = None) -> tuple[dict, Backbone | None, Backbone | None]:
    """The record of ``method`` unlearning ``request`` (default: the references' task) from
    ``previous`` (default: a copy of the original, through the method's ``start``),
    measured on the references' task; the unlearned model (None when it failed); and the
    method's own original (None: it started from the shared one), which the difference
    attack reads as "the model before unlearning" at every step."""
    started = dt.datetime.now(dt.timezone.utc).isoformat()
    task = refs.task
    request = request or task
    record = records.head(**_identity(refs, method, params))
    model = None
    try:
        instance = METHODS.get(method)(**(params or {}))
        record["params"] = json.dumps(instance.params, sort_keys=True)

        def from_scratch(pairs):
            return train_backbone(refs.dataset, refs.backbone, refs.seed, refs.hparams, refs.train_overrides,
                                  train_pairs=pairs, valid_pairs=request.retained_valid(),
                                  device=refs.original.device, cache_dir=refs.cache_dir, progress=False).model

        budget = budget.model_copy(update={"seed": refs.seed, "train_from_scratch": from_scratch,
                                           "train_shards": refs.shard_trainer(), "fit": refs.fitter()})
        if previous is None:
            original = copy.deepcopy(refs.original)
            model = instance.start(original, request, budget)
            own = copy.deepcopy(model) if model is not original else None  # a partitioned method's own
        origin = refs.origin_measure(own)
        if own is not None and previous is None:
            record |= {f"own_original_{k}": origin.metrics[k] for k in ("retain_valid_ndcg@20", "retain_test_ndcg@20")}
        model = previous if previous is not None else model
        before = copy.deepcopy(model) if previous is not None else (own if own is not None else refs.original)
        start = time.perf_counter()
        model = instance.unlearn(model, request, budget)
        seconds = instance.costs.get("unlearn_seconds", time.perf_counter() - start)
        if method == "retrain":
            seconds = refs.retrain_seconds  # a cached reference: report what training took
        measured = time.perf_counter()
        m = measure(model, task.retain_graph(), refs.dataset, task, refs.sample)
        audited = time.perf_counter()
        distances = refs.distances(m)
        diff_auc = difference_auc(origin.audit, m.audit, refs.sample)
        record |= m.metrics | refs.figures | distances | {
            "forget_gap@20": m.metrics["forget_recall@20"] - refs.retrain_measure.metrics["forget_recall@20"],
            "fairness_gap_vs_retrain@20": m.metrics["fairness_gap@20"] - refs.retrain_measure.metrics["fairness_gap@20"],
            "mia_diff_auc": diff_auc,
            "audit_seconds": m.audit_seconds + time.perf_counter() - audited,
        }
        record["unlearn_seconds"] = seconds
        record["speedup"] = refs.retrain_seconds / max(seconds, 1e-9)
        record["updated_fraction"] = updated_fraction(before, model)
        record["train_seconds_total"] = instance.costs.get("train_seconds_total", float("nan"))
        record["decisions"] = json.dumps(instance.summary(), sort_keys=True, default=str)
        record["measure_seconds"] = time.perf_counter() - measured
    except Exception as exc:  # a failing method is a record, not a crash of the run
        record["status"], record["error"] = "error", f"{type(exc).__name__}: {exc}"
        model = None
    record["data_fingerprint"] = refs.dataset.fingerprint
    record["code_version"] = code_version(refs.backbone, method) if method in METHODS.names() else ""
    record["started_at"] = started
    record["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat()
    return record, model, own
