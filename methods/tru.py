"""TRU v3: targeted reverse update (the method as implemented here: ``docs/tru.md``).

TRU is MMRecUn (:mod:`methods.reverse`: reverse BPR on D_f plus forward BPR on D_r)
with three interventions that switch off one by one. Notation: ``p_ui`` is the rank
percentile of item i among u's candidates (items outside u's retained training set;
1 = top), always from **evaluation-mode** embeddings on the retained graph G_r.

1. **One-sided ranking gate** (``gate_strength`` gamma in [0, 1]). A target distribution
   ``T`` of D_f percentiles is built without the retrained model (:meth:`TRU.target_distribution`):
   interaction deletion, the percentiles of held-out pairs of the affected users (what a
   non-member looks like); user deletion, the D_f percentiles after re-drawing the deleted
   users' ID rows (3 draws pooled: what retraining leaves of a user it never saw); item
   deletion, the floor 0 (retraining sees a target item only as a negative and buries
   it). Where the target is a re-draw, TRU starts (``redraw_start``) from a fourth,
   independent re-draw, and takes no step at all if that start is already within
   ``stop_tolerance``. Before each pass over D_f, every D_f pair gets its target ``t_ui`` by sorted
   matching (the pair of rank k of n gets the quantile ``(k + 1/2)/n`` of ``T``: the
   optimal coupling of 1-D Wasserstein distance), and the pass uses

       l_f(u, i) = w_ui softplus(s(u,i) - s(u,j)),   w_ui = 1 - gamma 1[p_ui <= t_ui]

   so at gamma = 1 a pair at or below its target feels no force, and no term ever raises
   a D_f score (``d l_f / d s(u,i) = w_ui sigmoid(.) >= 0``). Training stops once the
   distance ``mean_k |p_(k) - t_(k)|`` (1-D Wasserstein to ``T``) falls below
   ``stop_tolerance`` or grows from one pass to the next (over-forgetting).
2. **Branch-wise modality scaling** (``scale_power`` beta, ``modality_scales`` s_b).
   Diagonal Fishers of the reverse loss on ``probe_size`` D_f pairs and of the forward
   BPR on as many D_r pairs (stratified over users; :func:`fisher`):
   ``r_b = F_b(D_f) / F_b(D_r)`` per branch, ``a_b = s_b clip(r_b / median r, 1/100, 100)^beta``,
   then ``alpha_b = a_b / (sum_b n_b a_b / sum_b n_b)`` with ``n_b`` the branch's trainable
   entries: the factors **redistribute** the step size (parameter-weighted mean 1). Each
   branch is an Adam parameter group with step ``lr alpha_b``.
3. **Capacity-aware isolation** (``isolation_coverage`` kappa in (0, 1]; 1 = off). Units:
   every row of every table with user or item rows, and every shared tensor. Sensitivity
   ``S_l`` = summed diagonal Fisher of the reverse loss; capacity ``c_l`` = row width x
   (1 + the row's degree in D_r) for a row (a row the retained users lean on is costly),
   ``max(numel, produces) x (1 + mean D_r degree)`` for a shared tensor (it moves every
   row it produces). Units are taken by ``S_l / c_l``, highest first, until they cover
   ``kappa`` of ``sum S_l``: the cheapest set covering that share of the forget
   sensitivity. Everything else is frozen for the run; normalisation layers whose
   parameters are all frozen keep their running statistics. A backbone without item ID
   rows gets, in item deletion, a zero-initialised ``item_residual`` on its output item
   embeddings (:func:`add_item_residual`) whose rows are units
   like ID rows: the per-target-item unit.

With gamma = 0, beta = 0, kappa = 1 and stop_tolerance = 0 (so no target and no re-drawn
start), TRU performs exactly the
MMRecUn update (``tests/methods/test_tru.py``).
"""

from __future__ import annotations

import contextlib
import copy
import json
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backbones.base import EVAL_SEED, Batch, ParamSpec, eval_embeddings
from backbones.blocks.csr import row_entries
from backbones.blocks.graph import UserItemGraph
from harness.core.errors import UserError
from harness.core.seeding import generator, seeded
from methods.base import METHODS, Budget, HyperParameter
from methods.reverse import LAMBDA_F, LR, MAX_EPOCHS, MMRecUn, pair_scores, with_defaults

PROBE_DRAWS = 4  # random-sign backward passes per Fisher probe (fisher)
REDRAWS = 3  # re-drawn copies pooled into the user-deletion target
RATIO_CLIP = 100.0  # r_b / median r is clipped to [1 / RATIO_CLIP, RATIO_CLIP]
CHUNK = 256  # pairs per block of the percentile count
BLOCK_ENTRIES = 2**25  # scores per block of users in the percentiles (128 MB in float32)


@contextlib.contextmanager
def evaluating(model: nn.Module):
    """Eval mode inside the block; afterwards every module's own train/eval flag is as it
    was (``model.train(flag)`` would reset the normalisation layers TRU keeps in eval)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, mode in modes:
            module.training = mode


def add_item_residual(model, dim: int) -> nn.Parameter:
    """Add (once) ``item_residual``, a zero ``[n_items, dim]`` table that a forward hook adds
    to the model's final item embeddings: ``model(graph) -> (users, items + item_residual)``.
    It gives a backbone without item ID rows (MIG-GT) a row per item to move alone (the
    per-target-item unit); at zero the model is unchanged. It stays in the returned model."""
    if "item_residual" not in model._parameters:
        model.item_residual = nn.Parameter(torch.zeros(model.n_items, dim, device=model.device))
        model.register_forward_hook(_with_item_residual)
    return model.item_residual


def _with_item_residual(module, args, output):
    users, items = output
    return users, items + module.item_residual


def percentiles(users, items, pairs, exclude, block_entries: int = BLOCK_ENTRIES) -> torch.Tensor:
    """Rank percentiles ``[n]`` of ``pairs`` ``[n, 2]`` from detached scores:
    ``p = 1 - #{candidates c: s(u,c) > s(u,i)} / (n_u - 1)`` (1 = top; ties do not count as
    above), candidates being the items outside u's retained training items (``exclude``,
    a boolean CSR ``[U, I]``), ``n_u`` their number (at least 2). The distinct users of
    ``pairs`` are scored in blocks of ``[b, I]`` with ``b * I <= block_entries`` (at least
    one user), so memory does not grow with the number of users (at 100k users x 170k
    items one ``[users, I]`` matrix would take 68 GB)."""
    with torch.no_grad():
        unique, inverse = torch.unique(pairs[:, 0], return_inverse=True)
        device, n_items = users.device, items.shape[0]
        order = torch.argsort(inverse, stable=True)  # the pairs grouped by user, block by block
        ends = torch.cumsum(torch.bincount(inverse, minlength=len(unique)), 0).tolist()
        step = max(1, block_entries // max(n_items, 1))
        out = torch.empty(len(pairs), device=device)
        for first in range(0, len(unique), step):
            block = unique[first : first + step]
            mine = order[(ends[first - 1] if first else 0) : ends[first + len(block) - 1]].to(device)
            local = inverse.to(device)[mine] - first  # row of each of the block's pairs in ``scores``
            scores = users[block.to(device)] @ items.T  # [b, I]
            rows, cols = (t.to(device) for t in row_entries(exclude, block))
            n_cand = (n_items - torch.bincount(rows, minlength=len(block))).clamp(min=2).float()
            s = scores[local, pairs[:, 1].to(device)[mine]]
            scores[rows, cols] = float("-inf")
            above = torch.empty(len(s), device=device)
            for begin in range(0, len(s), CHUNK):  # chunks of rows stay in cache: 3.6x faster than all at once
                part = slice(begin, begin + CHUNK)
                above[part] = (scores[local[part]] > s[part, None]).sum(1, dtype=torch.int32).float()  # 1.2x count_nonzero
            out[mine] = 1.0 - above / (n_cand[local] - 1)
        return out


def matched_targets(p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sorted matching of ``p`` ``[n]`` to the distribution ``target`` ``[m]``: the element
    of ascending rank k gets ``quantile(target, (k + 1/2) / n)``; ``[n]``. Sorted matching is
    the optimal coupling of the 1-D Wasserstein distance, so ``mean max(p - t, 0)`` is the
    one-sided distance from ``p``'s distribution down to ``target``'s."""
    levels = (torch.arange(len(p), dtype=torch.float64) + 0.5) / max(len(p), 1)
    out = torch.empty(len(p), dtype=p.dtype)
    out[torch.argsort(p.cpu(), stable=True)] = torch.quantile(target.double().cpu(), levels).to(p.dtype)
    return out.to(p.device)


def stratified(pairs: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` of ``pairs`` ``[m, 2]`` spread over as many users as possible: a random order,
    then every user's first pair, then every user's second pair, and so on."""
    shuffled = pairs[torch.randperm(len(pairs), generator=gen)]
    users = shuffled[:, 0]
    by_user = torch.argsort(users, stable=True)
    first = torch.searchsorted(users[by_user], users[by_user])
    occurrence = torch.empty_like(users)
    occurrence[by_user] = torch.arange(len(users)) - first
    return shuffled[torch.argsort(occurrence, stable=True)[:n]]


def fisher(model, graph, pairs, negatives, reverse: bool, draws: int, gen) -> dict[str, torch.Tensor]:
    """Diagonal Fisher ``F = (1/n) sum_n g_n^2`` of the per-pair loss ``l_n`` (reverse BPR
    ``softplus(s(u,i) - s(u,j))`` or forward ``softplus(s(u,j) - s(u,i))``), ``g_n = d l_n / d theta``,
    in eval mode, without ``n`` backward passes: for random signs ``r in {-1, 1}^n``,
    ``E_r[(sum_n r_n g_n)^2] = sum_n g_n^2`` entry by entry (``E[r_n r_m] = 0`` for n != m), so
    ``F ~ 1/(n K) sum_k (d/d theta sum_n r_kn l_n)^2`` over ``K = draws`` backward passes
    (per-example gradients, unlike one full-batch gradient, do not vanish at a converged
    model). Returns ``{parameter name: tensor}`` for the trainable parameters."""
    params = {k: p for k, p in model.named_parameters() if p.requires_grad}
    total = {k: torch.zeros_like(p) for k, p in params.items()}
    device = model.device
    with evaluating(model), seeded(EVAL_SEED, device):
        users, items = model(graph)
        batch = Batch(graph, pairs[:, 0].to(device), pairs[:, 1].to(device), negatives.to(device))
        pos, neg = pair_scores(users, items, batch)
        losses = F.softplus(pos - neg) if reverse else F.softplus(neg - pos)
        for k in range(draws):
            signs = (torch.randint(2, (len(losses),), generator=gen) * 2 - 1).to(losses)
            grads = torch.autograd.grad((signs * losses).sum(), list(params.values()), retain_graph=k < draws - 1,
                                        allow_unused=True)
            for name, g in zip(params, grads):
                if g is not None:
                    total[name] += g.detach().pow(2)
    scale = 1.0 / max(len(pairs) * draws, 1)
    return {k: v * scale for k, v in total.items()}


def choose_units(sensitivity: torch.Tensor, capacity: torch.Tensor, kappa: float) -> torch.Tensor:
    """Indices of the units to update: by ``S_l / c_l``, highest first, the shortest prefix
    whose sensitivities sum to at least ``kappa sum S_l`` (at least one unit)."""
    order = torch.argsort(sensitivity / capacity, descending=True, stable=True)
    total = float(sensitivity.sum())
    if total <= 0:
        return order[:1]
    covered = torch.cumsum(sensitivity[order], 0)
    return order[: int(torch.searchsorted(covered, kappa * total * (1 - 1e-12))) + 1]


def specs_of(model) -> list[ParamSpec]:
    """The backbone's parameter specs, plus the item residual where TRU added one."""
    extra = [ParamSpec("item_residual", "id", rows="item")] if "item_residual" in model._parameters else []
    return model.parameter_specs() + extra


@dataclass
class _Run:
    """What one ``unlearn`` call computes before its steps and uses during them."""

    graph: UserItemGraph  # G_r
    exclude: torch.Tensor  # boolean CSR [U, I] of retained training items
    forget_pairs: torch.Tensor  # D_f, [n, 2]
    target: torch.Tensor | None = None  # target distribution of D_f percentiles
    weights: torch.Tensor | None = None  # w_ui of the current pass, [n]
    percentiles: torch.Tensor | None = None  # of D_f at the last refresh, [n]
    keys: torch.Tensor | None = None  # sorted u * I + i of D_f, and where each sits in D_f
    key_order: torch.Tensor | None = None
    alpha: dict[str, float] = field(default_factory=dict)  # step-size factor per branch
    hooks: list = field(default_factory=list)  # gradient masks of partly isolated tables
    distances: list[float] = field(default_factory=list)  # one-sided distance before each pass
    epochs_run: int = 0


@METHODS.register("tru")
class TRU(MMRecUn):
    """Targeted reverse update: MMRecUn with a one-sided ranking gate, step-size redistribution across modality branches and capacity-aware isolation (docs/tru.md)."""

    #: lr, max_epochs and lambda_f: MMRecUn's defaults (docs/defaults.md); the interventions'
    #: defaults were chosen on ml100k development tasks (bench/results/tru-v3-design-ml100k.md)
    hyperparameters = (
        HyperParameter("gate_strength", float, 1.0, 0.0, 1.0,
                       doc="gamma: share of the force removed at or below the target (0 = no gate)"),
        HyperParameter("stop_tolerance", float, 0.01, 0.0, 0.2,
                       doc="stop below this distance to the target, or once it grows (0 = never)"),
        HyperParameter("redraw_start", bool, True,
                       doc="user deletion with the gate on: start from re-drawn rows of the deleted users"),
        HyperParameter("modality_scales", str, "{}", 0.25, 4.0, log=True, per_branch=True,
                       doc='JSON {"branch": s_b} before normalisation; missing branches 1'),
        HyperParameter("scale_power", float, 0.5, 0.0, 2.0, doc="beta (0 = no scaling)"),
        HyperParameter("isolation_coverage", float, 0.9, 0.05, 1.0,
                       doc="kappa: share of forget sensitivity the updated units cover (1 = no isolation)"),
        HyperParameter("probe_size", int, 512, 16, 4096, doc="pairs per Fisher probe set (D_f and D_r each)"),
        *with_defaults(LR, MAX_EPOCHS, LAMBDA_F, lr=0.0198, max_epochs=18, lambda_f=0.0824),
    )
    tuned = ("gate_strength", "modality_scales", "isolation_coverage", "lr", "max_epochs", "lambda_f")
    #: hyperparameters an ablation fixes (and so does not declare)
    fixed: ClassVar[dict] = {}
    #: the target of item deletion: "floor" (0) or "redraw" (re-drawn item ID rows)
    item_target: ClassVar[str] = "floor"

    def __init__(self, **params):
        super().__init__(**params)
        self.params |= self.fixed
        self.scales = _modality_scales(self.name, self.params["modality_scales"])
        self.run: _Run | None = None

    # ------------------------------------------------------------------ lifecycle
    def unlearn(self, model, task, budget: Budget):
        graph = task.retain_graph()
        self.run = run = _Run(graph, graph.user_items_csr(), torch.from_numpy(task.forget))
        gated = self.params["gate_strength"] > 0.0 or self.params["stop_tolerance"] > 0.0
        if gated:
            run.target = self.target_distribution(model, task, budget.seed)
            keys = run.forget_pairs[:, 0] * task.n_items + run.forget_pairs[:, 1]
            run.keys, run.key_order = torch.sort(keys)
            self._refresh(model)
        self._probe(model, task, budget.seed)
        try:
            if self._reached():  # already within the tolerance (a re-drawn start): no step at all
                model.eval()
                self.decisions["steps"] = 0
            else:
                model = super().unlearn(model, task, budget)
        finally:
            for handle in run.hooks:
                handle.remove()
            for p in model.parameters():
                p.requires_grad_(True)
        self.decisions["epochs_run"] = run.epochs_run
        if gated:  # the last refresh saw the final model (it follows every pass, and nothing moves after it)
            p = run.percentiles
            t = matched_targets(p, run.target)
            self.decisions |= {"distances": [round(d, 5) for d in run.distances],
                               "final_distance": float((p - t).abs().mean()),
                               "final_above_target": float((p > t).float().mean())}
        return model

    # ------------------------------------------------------------------ the gate
    def target_distribution(self, model, task, seed: int) -> torch.Tensor:
        """Samples of the target distribution of D_f percentiles (module docstring, 1)."""
        kind = {"user": "user", "item": "item"}.get(task.regime)
        redrawable = kind is not None and any(s.rows == kind and s.branch == "id" for s in model.parameter_specs())
        if kind == "item" and self.item_target == "floor":
            target, how = torch.zeros(len(self.run.forget_pairs)), "floor"
        elif redrawable:
            index = torch.from_numpy(task.users if kind == "user" else task.items)
            draws = []
            for r in range(REDRAWS):
                probe = copy.deepcopy(model)
                with seeded(seed + 1 + r, model.device):
                    probe.redraw_rows(kind, index)
                draws.append(self._percentiles(probe, self.run.forget_pairs))
            if self.params["redraw_start"]:  # start from a draw of its own, not one of the target's
                with seeded(seed + 1 + REDRAWS, model.device):
                    model.redraw_rows(kind, index)
                self.decisions["redrawn_start"] = len(index)
            target, how = torch.cat(draws), "redraw"
        elif kind == "item":
            target, how = torch.zeros(len(self.run.forget_pairs)), "floor"
        else:
            valid = torch.from_numpy(task.valid)
            valid = valid[~torch.isin(valid[:, 0], torch.from_numpy(task.removed_users))]  # gone with their users
            mine = valid[torch.isin(valid[:, 0], torch.from_numpy(task.users))]
            target, how = self._percentiles(model, mine if len(mine) else valid), "held_out"
        self.decisions |= {"target": how, "target_median": float(target.median()), "target_size": len(target)}
        return target.cpu()

    def _refresh(self, model) -> None:
        """Eval-mode percentiles of D_f, their matched targets, the one-sided distance and
        the weights ``w_ui`` of the next pass."""
        run = self.run
        run.percentiles = p = self._percentiles(model, run.forget_pairs).cpu()
        t = matched_targets(p, run.target)
        run.distances.append(float((p - t).abs().mean()))
        run.weights = 1.0 - self.params["gate_strength"] * (p <= t).float()

    def _percentiles(self, model, pairs) -> torch.Tensor:
        """Rank percentiles ``[n]`` of ``pairs`` under ``model``'s evaluation embeddings on G_r."""
        with evaluating(model):  # eval_embeddings alone would reset every module to the model's mode
            return percentiles(*eval_embeddings(model, self.run.graph), pairs, self.run.exclude)

    # ------------------------------------------------------------------ probes
    def _probe(self, model, task, seed: int) -> None:
        beta, kappa = self.params["scale_power"], self.params["isolation_coverage"]
        if beta == 0.0 and kappa >= 1.0:
            return
        if kappa < 1.0 and task.regime == "item" and not any(
                s.rows == "item" and s.branch == "id" for s in model.parameter_specs()):
            add_item_residual(model, eval_embeddings(model, self.run.graph)[1].shape[1])
            self.decisions["item_residual"] = True
        gen = generator(seed + 2)
        n = self.params["probe_size"]
        retain = torch.from_numpy(task.retain)
        f_pairs = stratified(self.run.forget_pairs, n, gen)
        r_pairs = stratified(retain, n, gen)
        fisher_f = fisher(model, self.run.graph, f_pairs, torch.randint(task.n_items, (len(f_pairs),), generator=gen),
                          True, PROBE_DRAWS, gen)
        fisher_r = fisher(model, self.run.graph, r_pairs, torch.randint(task.n_items, (len(r_pairs),), generator=gen),
                          False, PROBE_DRAWS, gen)
        active = self._isolate(model, task, fisher_f, kappa) if kappa < 1.0 else {}
        if beta != 0.0:
            self._scale(model, fisher_f, fisher_r, active, beta)

    def _isolate(self, model, task, fisher_f, kappa: float) -> dict[str, torch.Tensor | None]:
        """Choose the units (module docstring, 3), freeze the rest; returns ``{parameter:
        row mask or None (all)}`` of what stays trainable."""
        params = dict(model.named_parameters())
        retain = torch.from_numpy(task.retain)
        degree = {"user": torch.bincount(retain[:, 0], minlength=task.n_users).double(),
                  "item": torch.bincount(retain[:, 1], minlength=task.n_items).double()}
        mean_degree = 2.0 * len(retain) / (task.n_users + task.n_items)
        owners, rows, sens, caps = [], [], [], []
        for spec in specs_of(model):
            p, f = params[spec.name], fisher_f[spec.name].double().cpu()
            if spec.rows is not None:
                per_row = f.reshape(len(p), -1).sum(1)
                owners += [spec.name] * len(p)
                rows.append(torch.arange(len(p)))
                sens.append(per_row)
                caps.append(p[0].numel() * (1.0 + degree[spec.rows]))
            else:
                owners.append(spec.name)
                rows.append(torch.tensor([-1]))
                sens.append(f.sum().reshape(1))
                caps.append(torch.tensor([max(p.numel(), spec.produces) * (1.0 + mean_degree)], dtype=torch.float64))
        row, s, c = torch.cat(rows), torch.cat(sens), torch.cat(caps)
        chosen = choose_units(s, c, kappa)
        active: dict[str, torch.Tensor | None] = {}
        for k in chosen.tolist():
            name, r = owners[k], int(row[k])
            if r < 0:
                active[name] = None
            else:
                mask = active.setdefault(name, torch.zeros(len(params[name]), dtype=torch.bool))
                mask[r] = True
        for name, p in params.items():
            if name not in active:
                p.requires_grad_(False)
            elif active[name] is not None and not bool(active[name].all()):
                keep = active[name].to(p.device, p.dtype).reshape((-1,) + (1,) * (p.dim() - 1))
                self.run.hooks.append(p.register_hook(lambda g, keep=keep: g * keep))
            else:
                active[name] = None
        self.decisions |= {
            "units": {name: "all" if m is None else int(m.sum()) for name, m in active.items()},
            "capacity_share": float(c[chosen].sum() / c.sum()),
            "coverage": float(s[chosen].sum() / s.sum()) if s.sum() > 0 else 0.0,
        }
        return active

    def _scale(self, model, fisher_f, fisher_r, active, beta: float) -> None:
        """``alpha_b``: Fisher ratios per branch, tempered, normalised to a parameter-weighted mean of 1."""
        params = dict(model.named_parameters())
        ratio, entries = {}, {}
        for branch, names in _branches(model).items():
            size = sum(fisher_f[k].numel() for k in names)
            f = sum(float(fisher_f[k].sum()) for k in names) / size
            r = sum(float(fisher_r[k].sum()) for k in names) / size
            ratio[branch] = (f + 1e-30) / (r + 1e-30)
            entries[branch] = sum(_trainable_entries(params[k], active, k) for k in names if params[k].requires_grad)
        median = float(np.median(list(ratio.values())))
        raw = {b: self.scales.get(b, 1.0) * float(np.clip(r / median, 1 / RATIO_CLIP, RATIO_CLIP)) ** beta
               for b, r in ratio.items()}
        weight = sum(entries.values())
        mean = sum(entries[b] * raw[b] for b in raw) / weight if weight else 1.0
        self.run.alpha = {b: a / mean for b, a in raw.items()}
        self.decisions["alpha"] = self.run.alpha

    # ------------------------------------------------------------------ hooks into the family
    def parameter_groups(self, model, task) -> list[dict]:
        trainable = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
        alpha = self.run.alpha
        if not alpha:
            return [{"params": [p for _, p in trainable]}]
        branch_of = {s.name: s.branch for s in specs_of(model)}
        groups: dict[str, list] = {}
        for name, p in trainable:
            groups.setdefault(branch_of[name], []).append(p)
        lr = self.params["lr"]
        return [{"params": ps, "lr": lr * alpha.get(b, 1.0)} for b, ps in groups.items()]

    def train_mode(self, model) -> None:
        """Training mode, except normalisation layers in a block (their parent module) whose
        parameters are all frozen: their running statistics stay as they are. A norm layer
        beside a trainable layer keeps tracking its moving inputs."""
        model.train()
        modules = dict(model.named_modules())
        for name, module in modules.items():
            enclosing = modules[name.rpartition(".")[0]] if "." in name else module  # e.g. the encoder's Sequential
            if isinstance(module, nn.modules.batchnorm._NormBase) and not any(
                    p.requires_grad for p in enclosing.parameters()):
                module.training = False

    def forget_loss(self, model, users, items, batch: Batch) -> torch.Tensor:
        if self.params["gate_strength"] == 0.0:
            return super().forget_loss(model, users, items, batch)
        pos, neg = pair_scores(users, items, batch)
        run = self.run
        keys = (batch.users * len(items) + batch.pos_items).cpu()
        where = run.key_order[torch.searchsorted(run.keys, keys)]
        return (run.weights[where].to(pos.device) * F.softplus(pos - neg)).mean()

    def should_stop(self, model, task) -> bool:
        self.run.epochs_run += 1
        if self.run.target is None:
            return False
        self._refresh(model)
        return self._reached()

    def _reached(self) -> bool:
        """With ``stop_tolerance`` > 0: whether the last distance to the target is below it,
        or larger than the one before (the pass moved D_f away from the target: over-forgetting)."""
        tolerance, d = self.params["stop_tolerance"], self.run.distances
        if self.run.target is None or tolerance <= 0.0:
            return False
        return d[-1] < tolerance or (len(d) > 1 and d[-1] > d[-2])


def _branches(model) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for spec in specs_of(model):
        out.setdefault(spec.branch, []).append(spec.name)
    return out


def _trainable_entries(p: torch.Tensor, active: dict, name: str) -> int:
    mask = active.get(name)
    return p.numel() if mask is None else int(mask.sum()) * p[0].numel()


def _modality_scales(method: str, text: str) -> dict[str, float]:
    """``modality_scales`` parsed: a JSON object of positive numbers, else a :class:`UserError`."""
    try:
        scales = json.loads(text)
    except json.JSONDecodeError:
        scales = None
    if not isinstance(scales, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in scales.values()):
        raise UserError(f"method '{method}': modality_scales must be a JSON object of positive numbers, got {text!r}")
    return {str(k): float(v) for k, v in scales.items()}


def _without(fixed: dict) -> tuple[HyperParameter, ...]:
    """TRU's declared hyperparameters less those an ablation fixes."""
    return tuple(h for h in TRU.hyperparameters if h.name not in fixed)


@METHODS.register("tru-no-gate")
class TRUNoGate(TRU):
    """TRU without the ranking gate (and without its stopping rule)."""

    fixed = {"gate_strength": 0.0, "stop_tolerance": 0.0}
    hyperparameters = _without(fixed)


@METHODS.register("tru-no-scale")
class TRUNoScale(TRU):
    """TRU without branch-wise modality scaling."""

    fixed = {"scale_power": 0.0, "modality_scales": "{}"}
    hyperparameters = _without(fixed)


@METHODS.register("tru-no-isolation")
class TRUNoIsolation(TRU):
    """TRU without capacity-aware isolation."""

    fixed = {"isolation_coverage": 1.0}
    hyperparameters = _without(fixed)
