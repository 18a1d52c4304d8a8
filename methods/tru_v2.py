"""TRU v2 (protocol v2's version, sign fixed, with its old defaults), kept as a reference
row beside TRU v3 in ``tru compare`` (``docs/tru.md``, section 7, says what v3 changed).

Ranking fusion gate against a scalar non-member level ``p*`` (``min(cold, held)``):
``l_f = (1 - gamma g) softplus(s(u,i) - s(u,j)) + gamma g softplus(z - z*_u + m)`` with
``g = sigmoid((p_ui - p*) / T)`` recomputed at every step from training-mode scores;
branch factors ``alpha_b = s_b clip((r_b / median r)^beta, alpha_min, alpha_max)`` on the
learning rate from 32 single-pair Fisher probes; isolation of touched/untouched row
blocks and shared tensors by ``S_l / c_l`` within a capacity budget ``rho``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from backbones.base import EVAL_SEED, Batch, eval_embeddings
from backbones.blocks.csr import row_entries
from backbones.blocks.graph import UserItemGraph
from backbones.blocks.losses import bpr_loss
from harness.core.seeding import generator, seeded
from methods.base import METHODS, Budget, HyperParameter
from methods.reverse import LAMBDA_F, MAX_EPOCHS, MMRecUn, pair_scores, with_defaults
from methods.tru import _modality_scales


def rank_stats(users, items, pairs, exclude, p_star: float | None = None):
    """Per pair ``(u, i)`` of ``pairs`` ``[n, 2]``, from detached scores over u's candidates
    (``exclude``: boolean CSR ``[U, I]`` of retained training items): percentile
    ``p = 1 - #{candidates scored above} / (n_u - 1)`` (1 = top), candidate mean and std,
    and the score at ``p_star`` (the candidate at position ``q = round((1 - p*)(n_u - 1))``
    from the top).

    Cost: one ``[users, I]`` score matrix; mean and std from row sums less the excluded
    entries; the score at ``p*`` from one ``kthvalue`` instead of a sort: with ``C = max q``,
    ``C - q`` of a row's excluded entries are set to +inf and the rest to -inf, which puts
    the wanted candidate at position ``C`` of every row (``C - q <= #excluded`` because
    ``q`` falls by at most one per excluded entry).
    """
    with torch.no_grad():
        unique, inverse = torch.unique(pairs[:, 0], return_inverse=True)
        scores = users[unique.to(users.device)] @ items.T  # [n_u, I]
        inverse, device = inverse.to(scores.device), scores.device
        rows, cols = (t.to(device) for t in row_entries(exclude, unique))  # excluded entries, row-major
        n_excluded = torch.bincount(rows, minlength=len(unique))
        n_cand = (scores.shape[1] - n_excluded).clamp(min=2).float()
        hidden = scores[rows, cols]
        mean = (scores.sum(1) - torch.zeros_like(n_cand).index_add_(0, rows, hidden)) / n_cand
        squares = (scores - mean[:, None]).pow(2).sum(1)
        squares -= torch.zeros_like(n_cand).index_add_(0, rows, (hidden - mean[rows]).pow(2))
        std = (squares.clamp(min=0) / (n_cand - 1)).sqrt().clamp(min=1e-8)
        s = scores[inverse, pairs[:, 1].to(device)]
        scores[rows, cols] = float("-inf")  # scores is ours: candidates only from here
        above = (scores[inverse] > s[:, None]).sum(1).float()
        p = 1.0 - above / (n_cand[inverse] - 1)
        at = None
        if p_star is not None:
            q = ((1.0 - p_star) * (n_cand - 1)).round().long()
            top = int(q.max())
            lift = top - q  # excluded entries of each row to put above the candidates
            first = torch.cumsum(n_excluded, 0) - n_excluded
            up = (torch.arange(len(rows), device=device) - first[rows]) < lift[rows]
            scores[rows[up], cols[up]] = float("inf")
            at = scores.kthvalue(scores.shape[1] - top, dim=1).values[inverse]
        return p, mean[inverse], std[inverse], at


class Unit(NamedTuple):
    """A unit of capacity-aware layer isolation: a whole shared tensor (``rows`` None) or
    the touched / untouched rows of an embedding table."""

    label: str  # "item_embedding[touched]", or the tensor's name
    param: str  # the parameter it belongs to
    rows: torch.Tensor | None  # boolean row mask, None for a whole tensor
    sensitivity: float  # S_l: summed diagonal Fisher of the reverse loss
    capacity: int  # c_l: entries (rows x width), or max(numel, produces) for a shared tensor


@dataclass
class _Run:
    """What one ``unlearn`` call computes before its steps and uses during them."""

    graph: UserItemGraph  # G_r
    exclude: torch.Tensor  # boolean CSR [U, I] of retained training items
    forget_pairs: torch.Tensor  # D_f, [n, 2]
    p_star: float = 1.0
    alpha: dict[str, float] = field(default_factory=dict)  # step-size factor per branch
    hooks: list = field(default_factory=list)  # gradient masks of partly isolated tables
    epochs_run: int = 0


@METHODS.register("tru-v2")
class TRUv2(MMRecUn):
    """TRU v2 with its old defaults (the sign fixed): the reference row beside TRU v3."""

    #: v2's defaults, chosen on ml100k / MGCN development tasks before v3 (docs/defaults.md)
    hyperparameters = (
        HyperParameter("gate_strength", float, 0.331, 0.0, 1.0, doc="gamma: weight of the rank term"),
        HyperParameter("gate_temperature", float, 0.05, 0.005, 0.5, log=True, doc="T, percentile units"),
        HyperParameter("gate_margin", float, 0.0, -1.0, 2.0, doc="m, standard units"),
        HyperParameter("stop_tolerance", float, 0.01, 0.0, 0.2, doc="stop at this mean excess over p*"),
        HyperParameter("modality_scales", str, '{"fusion": 0.258, "id": 0.614, "image": 2.8, "text": 2.38}', 0.25,
                       4.0, log=True, per_branch=True, doc='JSON {"branch": s_b}; missing branches 1 (defaults: MGCN\'s)'),
        HyperParameter("scale_power", float, 0.5, 0.0, 2.0, doc="beta"),
        HyperParameter("alpha_min", float, 0.1, 0.0, 1.0, doc="lower clip of alpha_b"),
        HyperParameter("alpha_max", float, 10.0, 1.0, 100.0, doc="upper clip of alpha_b"),
        HyperParameter("layer_budget", float, 0.00687, 0.001, 1.0, log=True, doc="rho, share of total capacity"),
        HyperParameter("probe_size", int, 32, 4, 512, doc="pairs per Fisher probe set"),
        HyperParameter("lr", float, 0.0111, 1e-5, 1e-1, log=True, doc="Adam step size"),
        *with_defaults(MAX_EPOCHS, LAMBDA_F, max_epochs=8, lambda_f=12.1),
    )
    tuned = ("gate_strength", "modality_scales", "layer_budget", "lr", "max_epochs", "lambda_f")

    def __init__(self, **params):
        super().__init__(**params)
        self.scales = _modality_scales(self.name, self.params["modality_scales"])
        self.run: _Run | None = None

    # ------------------------------------------------------------------ lifecycle
    def unlearn(self, model, task, budget: Budget):
        graph = task.retain_graph()
        self.run = run = _Run(graph, graph.user_items_csr(), torch.from_numpy(task.forget))
        run.p_star = self.non_member_level(model, task, budget.seed)
        self.decisions["p_star"] = run.p_star
        self._probe(model, task, budget.seed)
        try:
            model = super().unlearn(model, task, budget)
        finally:
            for handle in run.hooks:
                handle.remove()
            for p in model.parameters():
                p.requires_grad_(True)
        p = self._percentiles(model, run.forget_pairs)
        gate = torch.sigmoid((p - run.p_star) / self.params["gate_temperature"])
        self.decisions |= {
            "epochs_run": run.epochs_run,
            "final_gate": float(gate.mean()),
            "final_excess": float((p - run.p_star).clamp(min=0).mean()),
        }
        return model

    # ------------------------------------------------------------------ p*
    def non_member_level(self, model, task, seed: int) -> float:
        """``p*`` = the held-out level, capped from above for user and item deletion by the
        cold-start level (the regime's re-drawn rows, no edges): ``min(cold, held)``."""
        valid = torch.from_numpy(task.valid)
        valid = valid[~torch.isin(valid[:, 0], torch.from_numpy(task.removed_users))]  # deleted users' data is gone
        mine = valid[torch.isin(valid[:, 0], torch.from_numpy(task.users))]
        held = float(self._percentiles(model, mine if len(mine) else valid).median())
        self.decisions["p_held_out"] = held
        if task.regime not in ("user", "item"):
            return held
        probe = copy.deepcopy(model)
        index = torch.from_numpy(task.users if task.regime == "user" else task.items)
        with seeded(seed + 1, model.device):
            probe.redraw_rows(task.regime, index)
        cold = float(self._percentiles(probe, self.run.forget_pairs).median())
        self.decisions["p_cold_start"] = cold
        return min(cold, held)

    def _percentiles(self, model, pairs) -> torch.Tensor:
        """Rank percentiles ``[n]`` of ``pairs`` under ``model``'s evaluation embeddings on G_r."""
        return rank_stats(*eval_embeddings(model, self.run.graph), pairs, self.run.exclude)[0]

    # ------------------------------------------------------------------ probes
    def _probe(self, model, task, seed: int) -> None:
        """Per-example squared gradients on D_f (reverse loss) and D_r (forward BPR)."""
        beta, rho = self.params["scale_power"], self.params["layer_budget"]
        if beta == 0.0 and rho >= 1.0:
            return
        gen = generator(seed + 2)
        n = self.params["probe_size"]
        retain = torch.from_numpy(task.retain)
        forget = self.run.forget_pairs
        f_pairs = forget[torch.randperm(len(forget), generator=gen)[:n]]
        r_pairs = retain[torch.randperm(len(retain), generator=gen)[:n]]
        negatives = torch.randint(task.n_items, (2, n), generator=gen)
        fisher_f = self._fisher(model, f_pairs, negatives[0][: len(f_pairs)], reverse=True)
        fisher_r = self._fisher(model, r_pairs, negatives[1][: len(r_pairs)], reverse=False)
        specs = model.parameter_specs()
        if beta != 0.0:
            ratio = {}
            for branch, names in model.branches().items():
                size = sum(fisher_f[k].numel() for k in names)
                f = sum(float(fisher_f[k].sum()) for k in names) / size
                r = sum(float(fisher_r[k].sum()) for k in names) / size
                ratio[branch] = (f + 1e-30) / (r + 1e-30)
            median = float(np.median(list(ratio.values())))
            lo, hi = self.params["alpha_min"], self.params["alpha_max"]
            self.run.alpha = {
                b: self.scales.get(b, 1.0) * float(np.clip((r / median) ** beta, lo, hi)) for b, r in ratio.items()
            }
            self.decisions["alpha"] = self.run.alpha
        if rho < 1.0:
            self._isolate(model, task, specs, fisher_f, rho)

    def _fisher(self, model, pairs, negatives, reverse: bool) -> dict[str, torch.Tensor]:
        params = {k: p for k, p in model.named_parameters() if p.requires_grad}
        total = {k: torch.zeros_like(p) for k, p in params.items()}
        was_training = model.training
        model.eval()
        graph = self.run.graph
        with seeded(EVAL_SEED, model.device):
            users, items = model(graph)
            device = model.device
            for (u, i), j in zip(pairs.tolist(), negatives.tolist()):
                batch = Batch(graph, torch.tensor([u], device=device), torch.tensor([i], device=device),
                              torch.tensor([j], device=device))
                pos, neg = pair_scores(users, items, batch)
                loss = bpr_loss(neg, pos) if reverse else bpr_loss(pos, neg)
                grads = torch.autograd.grad(loss, list(params.values()), retain_graph=True, allow_unused=True)
                for (k, _), g in zip(params.items(), grads):
                    if g is not None:
                        total[k] += g.detach().pow(2)
        model.train(was_training)
        return {k: v / max(len(pairs), 1) for k, v in total.items()}

    def _isolate(self, model, task, specs, fisher_f, rho: float) -> None:
        params = dict(model.named_parameters())
        units: list[Unit] = []
        touched = {"user": torch.from_numpy(task.users), "item": torch.from_numpy(task.items)}
        for spec in specs:
            p, f = params[spec.name], fisher_f[spec.name]
            if spec.rows is not None:
                mask = torch.zeros(p.shape[0], dtype=torch.bool)
                mask[touched[spec.rows]] = True
                width = p[0].numel()
                for label, rows in (("touched", mask), ("untouched", ~mask)):
                    if rows.any():
                        units.append(Unit(f"{spec.name}[{label}]", spec.name, rows,
                                          float(f[rows.to(f.device)].sum()), int(rows.sum()) * width))
            else:
                units.append(Unit(spec.name, spec.name, None, float(f.sum()), max(p.numel(), spec.produces)))
        total = sum(u.capacity for u in units)
        order = sorted(units, key=lambda u: u.sensitivity / u.capacity, reverse=True)
        chosen, used = [], 0
        for unit in order:
            if not chosen or used + unit.capacity <= rho * total:
                chosen.append(unit)
                used += unit.capacity
        active: dict[str, torch.Tensor | None] = {}  # parameter -> rows to update (None: all)
        for unit in chosen:
            if unit.rows is None:
                active[unit.param] = None
            else:
                active[unit.param] = unit.rows if unit.param not in active else active[unit.param] | unit.rows
        for name, p in params.items():
            if name not in active:
                p.requires_grad_(False)
            elif active[name] is not None and not bool(active[name].all()):
                shape = (-1,) + (1,) * (p.dim() - 1)
                keep = active[name].to(p.device, p.dtype).reshape(shape)
                self.run.hooks.append(p.register_hook(lambda g, keep=keep: g * keep))
        self.decisions["units"] = [{"unit": u.label, "capacity_share": u.capacity / total} for u in chosen]
        self.decisions["capacity_share"] = used / total

    # ------------------------------------------------------------------ hooks into the family
    def parameter_groups(self, model, task) -> list[dict]:
        trainable = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
        alpha = self.run.alpha
        if not alpha:
            return [{"params": [p for _, p in trainable]}]
        branch_of = {s.name: s.branch for s in model.parameter_specs()}
        groups: dict[str, list] = {}
        for name, p in trainable:
            groups.setdefault(branch_of[name], []).append(p)
        lr = self.params["lr"]
        return [{"params": ps, "lr": lr * alpha.get(b, 1.0)} for b, ps in groups.items()]

    def forget_loss(self, model, users, items, batch: Batch) -> torch.Tensor:
        gamma = self.params["gate_strength"]
        if gamma == 0.0:
            return super().forget_loss(model, users, items, batch)
        pos, neg = pair_scores(users, items, batch)
        pairs = torch.stack([batch.users, batch.pos_items], 1).cpu()
        p_star = self.run.p_star
        p, mean, std, at = rank_stats(users.detach(), items.detach(), pairs, self.run.exclude, p_star)
        gate = gamma * torch.sigmoid((p - p_star) / self.params["gate_temperature"])
        z = (pos - mean) / std
        z_star = (at - mean) / std
        rank_term = F.softplus(z - z_star + self.params["gate_margin"])
        return ((1 - gate) * F.softplus(pos - neg) + gate * rank_term).mean()

    def should_stop(self, model, task) -> bool:
        self.run.epochs_run += 1
        tolerance = self.params["stop_tolerance"]
        if tolerance <= 0.0:
            return False
        p = self._percentiles(model, self.run.forget_pairs)
        return float((p - self.run.p_star).clamp(min=0).mean()) < tolerance
