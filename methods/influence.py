"""The influence family: one Newton step on the retained loss (:mod:`methods.newton`),
differing in which entries it moves and how it solves.

    theta <- theta0 + tau * (H + lambda I)^{-1} g

(the summed form of :mod:`methods.newton`'s ``H_mean^{-1} g / n``: ``H`` here is the
Hessian of the *summed* retained loss, so ``lambda`` is in the units of one pair's
curvature whatever the dataset's size).

**The losses.** ``l`` is the backbone's own training loss (``Backbone.loss``: BPR with
its regularisation and, for MGCN, its contrastive term), in eval mode under
:data:`backbones.base.EVAL_SEED`, on pairs with one fixed negative each (drawn outside
the user's training items in D, from the job's seed). A sum over many pairs is taken in
chunks of the shared batch size, ``sum_chunks |chunk| * l(chunk)``.

* ``g = grad [ sum_{D_f} l(theta0; G) + sum_{A} (l(theta0; G) - l(theta0; G_r)) ]``: the
  deleted pairs on the original graph ``G``, plus the *graph term* (GIF, IFRU) over the
  retained pairs ``A`` that share a user or an item with ``D_f``, whose embeddings the
  deletion changes (at most ``graph_pairs`` of them, sampled and scaled up). SCIF has
  no graph term.
* ``H``: the Hessian, on ``G_r``, of ``|P| / |S|`` times the summed loss of a sample
  ``S`` of ``hessian_pairs`` retained pairs drawn from the population ``P`` whose
  curvature the moved entries see: all of ``D_r`` when every parameter moves (GIF), else
  the retained pairs incident to the chosen users and items. It estimates the Hessian of
  the summed retained loss.
* ``lambda`` (``damping``) and ``tau`` (``scale``; 1 in the derivation) are tuned by the
  sweep like every other method's hyperparameters. ``iterations`` caps the
  Hessian-vector products (the cost: about one backward pass each).

**The members** (facts from their official code, ``baiyimeng/IFRU`` and
``wujcan/GIF-torch``; SCIF has no public code, so it follows the IFRU repository's
reimplementation):

* ``ifru`` (Zhang et al., TORS 2024): the ID rows of the nodes near ``D_f``, by
  degree-normalised influence: ``s_0(v) = c(v) / d(v)`` for each user or item ``v``
  with ``c(v)`` deleted pairs and ``d(v)`` training pairs in D (+1, a self-loop), then
  ``k`` times ``s(w) = sum_{v in N(w) + w} s(v) / d(w)``; the nodes whose ``s`` is
  above the ``percentile``-th percentile of the nonzero scores are moved (their code:
  k = 1, the 40th percentile; the defaults here were chosen on development tasks,
  docs/defaults.md). Conjugate gradient. Differences from the official code:
  it solves ``H p = g`` by Adam for up to 5,000 steps, keeping the step with the best
  validation AUC, and scores the Hessian's loss without propagation while ``g`` uses
  it; it trains and deletes label-flipped pointwise (BCE) data without regularisation,
  and uses only 1-hop scores whatever ``k`` is. Here ``k`` hops are honoured, the
  Hessian and ``g`` use the same loss, and ``tau`` stands for their validation-chosen
  step count (tuned on development tasks, like everything else).
* ``scif`` (Li et al., 2023, arXiv 2304.10199): only the ID rows of the users and items
  ``D_f`` touches, kept above the ``percentile`` of ``s_0`` (0: all of them; the IFRU
  repository's SCIF keeps those above the 40th for LightGCN), no graph term.
  Conjugate gradient. Its label-replacement term (the user's mean label) has no
  counterpart in BPR and is left out.
* ``gif`` (Wu et al., WWW 2023): every trainable parameter, by the LiSSA recursion
  (``lissa_scale``; their defaults: 5 iterations, scale 50, damping 0, in our
  parametrisation ``lambda = damping * scale``). GIF's graph term covers the nodes
  within 2 hops of a deleted edge; here ``A`` is the 1-hop pairs, as in IFRU.

Approximations, each a choice of this reconstruction:

* negatives are drawn outside D (the original's training items), for ``D_r``'s Hessian
  sample too, where retraining would draw outside ``D_r``: a deleted item can be a
  negative there; the bias is small at a 5% deletion;
* for ``ifru`` and ``scif``, ``P`` (the pairs incident to the moved rows) undercounts the
  curvature those rows see through ``K`` propagation layers, which reach pairs up to
  ``K`` hops away;
* in user deletion the retained loss on ``G_r`` does not depend on the deleted users'
  rows, so their Hessian block is 0 and their step is ``tau g / lambda``, sized by the
  damping alone: that is what ``forget_ks`` and ``privleak`` see of them.

A backbone without ID rows for users or items (MIG-GT's items) gives ``ifru`` and
``scif`` nothing to move there: only the rows it has are moved (``decisions`` says so).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from backbones.base import EVAL_SEED, Batch
from backbones.blocks.graph import UserItemGraph
from backbones.blocks.sampling import NegativeSampler
from harness.core.seeding import generator, seeded
from methods.base import METHODS, Budget, HyperParameter, UnlearningMethod
from methods.newton import Subspace, conjugate_gradient, gradient, hessian_vector_product, lissa
from methods.reverse import with_defaults
from methods.tru import evaluating

DAMPING = HyperParameter("damping", float, 10.0, 1e-4, 1e4, log=True, doc="lambda: added to H's diagonal")
ITERATIONS = HyperParameter("iterations", int, 20, 1, 100, doc="cap on Hessian-vector products (the cost)")
SCALE = HyperParameter("scale", float, 1.0, 0.01, 1000.0, log=True, doc="tau: multiplies the Newton step")
HESSIAN_PAIRS = HyperParameter("hessian_pairs", int, 2048, 64, 65536, doc="retained pairs the Hessian is of")
GRAPH_PAIRS = HyperParameter("graph_pairs", int, 4096, 0, 65536, doc="cap on the graph term's pairs A")


def summed_loss(model, graph: UserItemGraph, pairs: torch.Tensor, negatives: torch.Tensor, chunk: int) -> torch.Tensor:
    """``sum_chunks |chunk| * model.loss(chunk)`` over ``pairs`` ``[n, 2]`` with their ``negatives`` ``[n]`` on ``graph``."""
    device = model.device
    total = torch.zeros((), device=device)
    for begin in range(0, len(pairs), chunk):
        part = slice(begin, begin + chunk)
        batch = Batch(graph, pairs[part, 0].to(device), pairs[part, 1].to(device), negatives[part].to(device))
        total = total + len(pairs[part]) * model.loss(batch)
    return total


def incident(pairs: torch.Tensor, users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int) -> torch.Tensor:
    """Boolean ``[n]``: the pairs whose user is in ``users`` or whose item is in ``items``."""
    user_in, item_in = torch.zeros(n_users, dtype=torch.bool), torch.zeros(n_items, dtype=torch.bool)
    user_in[users], item_in[items] = True, True
    return user_in[pairs[:, 0]] | item_in[pairs[:, 1]]


def _sample(pairs: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    return pairs if len(pairs) <= n else pairs[torch.randperm(len(pairs), generator=gen)[:n]]


def node_influence(train: np.ndarray, forget: np.ndarray, n_users: int, n_items: int, hops: int) -> np.ndarray:
    """IFRU's degree-normalised influence ``[n_users + n_items]`` (users first) after
    ``hops`` propagation steps (module docstring); ``hops = 0``: ``s_0 = c(v) / d(v)``."""
    n = n_users + n_items
    degree = np.bincount(train[:, 0], minlength=n_users).astype(float)
    degree = np.concatenate([degree, np.bincount(train[:, 1], minlength=n_items)]) + 1.0  # + the self-loop
    count = np.concatenate([np.bincount(forget[:, 0], minlength=n_users),
                            np.bincount(forget[:, 1], minlength=n_items)]).astype(float)
    score = count / degree
    rows = np.concatenate([train[:, 0], train[:, 1] + n_users, np.arange(n)])
    cols = np.concatenate([train[:, 1] + n_users, train[:, 0], np.arange(n)])
    for _ in range(hops):
        score = np.bincount(rows, weights=score[cols], minlength=n) / degree  # sum over N(w) + w, / d(w)
    return score


class InfluenceUnlearning(UnlearningMethod):
    """Base of the family: one Newton step on the entries :meth:`subspace` chooses."""

    graph_term: ClassVar[bool] = True
    solver: ClassVar[str] = "cg"

    def subspace(self, model, task) -> tuple[Subspace, np.ndarray | None]:
        """The entries to move, and the nodes they belong to (users first; ``None``: every parameter)."""
        raise NotImplementedError

    def unlearn(self, model, task, budget: Budget):
        gen = generator(budget.seed)
        forget, retain = torch.from_numpy(task.forget), torch.from_numpy(task.retain)
        full_pairs = torch.cat([retain, forget])
        full, retained = UserItemGraph(full_pairs, task.n_users, task.n_items), task.retain_graph()
        sampler = NegativeSampler(full_pairs, task.n_items)
        space, nodes = self.subspace(model, task)
        self.decisions["entries"] = space.size
        if space.size == 0:
            self.decisions["skipped"] = "nothing to move"
            return model
        if nodes is None:
            population = retain
        else:
            users, items = (torch.from_numpy(nodes[nodes < task.n_users]),
                            torch.from_numpy(nodes[nodes >= task.n_users] - task.n_users))
            population = retain[incident(retain, users, items, task.n_users, task.n_items)]
        sample = _sample(population, self.params["hessian_pairs"], gen)
        sample_negatives = sampler.sample(sample[:, 0], gen)
        forget_negatives = sampler.sample(forget[:, 0], gen)
        chunk = budget.batch_size
        with evaluating(model), seeded(EVAL_SEED, model.device):  # as TRU's Fisher probes (methods.tru.fisher)
            objective = summed_loss(model, full, forget, forget_negatives, chunk)
            if self.graph_term and self.params["graph_pairs"] > 0:
                touched = retain[incident(retain, torch.from_numpy(task.users), torch.from_numpy(task.items),
                                          task.n_users, task.n_items)]
                changed = _sample(touched, self.params["graph_pairs"], gen)
                negatives = sampler.sample(changed[:, 0], gen)
                scaled_up = len(touched) / max(len(changed), 1)
                objective = objective + scaled_up * (summed_loss(model, full, changed, negatives, chunk)
                                                  - summed_loss(model, retained, changed, negatives, chunk))
                self.decisions["graph_pairs"] = len(touched)
            b = gradient(objective, space)
            stands_for = len(population) / max(len(sample), 1)  # the sample's sum stands for the population's
            hvp = hessian_vector_product(lambda: stands_for * summed_loss(model, retained, sample, sample_negatives, chunk),
                                         space)
            damping, cap = self.params["damping"], self.params["iterations"]
            if self.solver == "cg":
                solution = conjugate_gradient(hvp, b, damping, cap)
            else:
                solution = lissa(hvp, b, damping, self.params["lissa_scale"], cap)
        step = self.params["scale"] * solution.x
        space.add_(step)
        model.eval()
        self.decisions |= {"population": len(population), "hessian_pairs": len(sample),
                           "products": solution.products, "residual": round(solution.residual, 6),
                           "solver_stopped": solution.stopped,
                           "step_norm": float(step.norm())}
        return model


def _id_rows(model, nodes: np.ndarray, n_users: int) -> Subspace:
    """The ``id``-branch rows of ``nodes`` (users first) in every table that has them."""
    params = dict(model.named_parameters())
    chosen = {"user": torch.from_numpy(nodes[nodes < n_users]),
              "item": torch.from_numpy(nodes[nodes >= n_users] - n_users)}
    tables = [(params[s.name], chosen[s.rows]) for s in model.parameter_specs()
              if s.branch == "id" and s.rows in chosen and len(chosen[s.rows])]
    return Subspace([p for p, _ in tables], [r for _, r in tables])


def _above(score: np.ndarray, percentile: float) -> np.ndarray:
    """Nodes with a nonzero score strictly above the ``percentile``-th percentile of the nonzero
    scores (``percentile = 0``: every nonzero one)."""
    nonzero = np.flatnonzero(score > 0)
    if percentile <= 0 or len(nonzero) == 0:
        return nonzero
    return nonzero[score[nonzero] > np.percentile(score[nonzero], percentile)]


@METHODS.register("ifru")
class IFRU(InfluenceUnlearning):
    """Influence-function unlearning of the ID rows near D_f, with the graph term (Zhang et al., TORS 2024)."""

    hyperparameters = with_defaults(
        DAMPING, ITERATIONS, SCALE,
        HyperParameter("hops", int, 1, 0, 3, doc="k: propagation steps of the node influence"),
        HyperParameter("percentile", float, 40.0, 0.0, 95.0, doc="move the nodes above this percentile of the influence"),
        HESSIAN_PAIRS, GRAPH_PAIRS,
        damping=8.73, iterations=62, scale=12.2, hops=3, percentile=64.8)  # their code: k = 1, the 40th percentile
    tuned = ("damping", "iterations", "scale", "hops", "percentile")

    def subspace(self, model, task):
        train = np.concatenate([task.retain, task.forget])
        score = node_influence(train, task.forget, task.n_users, task.n_items, self.params["hops"])
        nodes = _above(score, self.params["percentile"])
        self.decisions |= {"nodes": len(nodes), "users": int((nodes < task.n_users).sum())}
        return _id_rows(model, nodes, task.n_users), nodes


@METHODS.register("scif")
class SCIF(InfluenceUnlearning):
    """Influence-function unlearning of the ID rows of the users and items D_f touches, no graph term (Li et al., 2023)."""

    graph_term = False
    hyperparameters = with_defaults(
        DAMPING, ITERATIONS, SCALE,
        HyperParameter("percentile", float, 0.0, 0.0, 95.0, doc="move the touched nodes above this percentile of c(v) / d(v)"),
        HESSIAN_PAIRS,
        damping=0.245, iterations=65, scale=1.54, percentile=84.7)
    tuned = ("damping", "iterations", "scale", "percentile")

    def subspace(self, model, task):
        train = np.concatenate([task.retain, task.forget])
        nodes = _above(node_influence(train, task.forget, task.n_users, task.n_items, 0), self.params["percentile"])
        self.decisions |= {"nodes": len(nodes), "users": int((nodes < task.n_users).sum())}
        return _id_rows(model, nodes, task.n_users), nodes


@METHODS.register("gif")
class GIF(InfluenceUnlearning):
    """Influence-function unlearning of every parameter by the LiSSA recursion, with the graph term (Wu et al., WWW 2023)."""

    solver = "lissa"
    hyperparameters = with_defaults(
        DAMPING, ITERATIONS, SCALE,
        HyperParameter("lissa_scale", float, 1e4, 1.0, 1e6, log=True,
                       doc="s: LiSSA's scale (every eigenvalue of H + lambda I below 2 s)"),
        HESSIAN_PAIRS, GRAPH_PAIRS,
        damping=3720.0, iterations=67, scale=830.0, lissa_scale=23000.0)
    tuned = ("damping", "iterations", "scale", "lissa_scale")

    def subspace(self, model, task):
        params = [p for p in model.parameters() if p.requires_grad]
        return Subspace(params, [None] * len(params)), None
