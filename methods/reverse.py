"""The reverse-update family: finetune, NegGrad, NegGrad+, MMRecUn (and TRU on top).

Every member takes Adam steps, starting from ``theta0`` on the retained graph ``G_r``:

    loss = keep * L_keep + lambda_f * L_forget
    L_keep   = mean over a D_r batch (u, i), j a sampled negative: -log sigmoid(s(u,i) - s(u,j))
    L_forget = "reverse": mean over a D_f batch of -log sigmoid(s(u,j) - s(u,i))   (MMRecUn)
               "ascent":  mean over a D_f batch of  log sigmoid(s(u,i) - s(u,j))   (NegGrad)

One step per D_f batch, ``min(max_epochs, budget.epochs)`` passes over D_f: the shared
budget caps every member alike, and every member may be tuned to stop earlier
(``max_epochs``, declared by the whole family so that no method alone can choose how
long it trains); the D_r batch has the D_f batch's size. Members differ only in
the class attributes below; TRU overrides :meth:`parameter_groups` and
:meth:`forget_loss` (open-unlearning style: a method is a few lines on its parent).
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import torch

from backbones.base import Batch, gather_rows
from backbones.blocks.losses import bpr_loss
from backbones.blocks.sampling import NegativeSampler
from harness.core.seeding import generator, seeded
from methods.base import METHODS, Budget, HyperParameter, UnlearningMethod

LR = HyperParameter("lr", float, 1e-3, 1e-5, 1e-1, log=True, doc="Adam step size")
LAMBDA_F = HyperParameter("lambda_f", float, 1.0, 0.01, 100.0, log=True, doc="weight of the forget term")
MAX_EPOCHS = HyperParameter("max_epochs", int, 10, 1, 20, doc="passes over D_f (capped by the shared budget)")


def with_defaults(*declared: HyperParameter, **defaults) -> tuple[HyperParameter, ...]:
    """``declared`` with the given defaults: each method's own, chosen by one procedure on
    development tasks (``docs/defaults.md``, ``bench/choose_defaults.py``)."""
    unknown = set(defaults) - {h.name for h in declared}
    if unknown:
        raise ValueError(f"no hyperparameter {sorted(unknown)}")
    return tuple(replace(h, default=defaults[h.name]) if h.name in defaults else h for h in declared)


def pair_scores(users: torch.Tensor, items: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """``(s(u,i), s(u,j))`` of a batch from final embeddings, each ``[B]``."""
    u = gather_rows(users, batch.users)
    return (u * gather_rows(items, batch.pos_items)).sum(1), (u * gather_rows(items, batch.neg_items)).sum(1)


class ReverseUpdate(UnlearningMethod):
    """Base of the family; ``forget_mode`` in {"reverse", "ascent", None}, ``keep`` on/off."""

    forget_mode: ClassVar[str | None] = "reverse"
    keep: ClassVar[bool] = True
    hyperparameters = (LR, LAMBDA_F, MAX_EPOCHS)

    def parameter_groups(self, model, task) -> list[dict]:
        """Optimizer parameter groups; the whole model by default."""
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def forget_loss(self, model, users, items, batch: Batch) -> torch.Tensor:
        pos, neg = pair_scores(users, items, batch)
        if self.forget_mode == "reverse":
            return bpr_loss(neg, pos)
        return -bpr_loss(pos, neg)  # ascent on the forward BPR

    def unlearn(self, model, task, budget: Budget):
        device = model.device
        graph = task.retain_graph()
        forget = torch.from_numpy(task.forget)
        retain = torch.from_numpy(task.retain)
        all_pairs = torch.cat([forget, retain])
        forget_negatives = NegativeSampler(all_pairs, task.n_items)  # j outside the user's D
        keep_negatives = NegativeSampler(retain, task.n_items)
        gen = generator(budget.seed)
        optimiser = torch.optim.Adam(self.parameter_groups(model, task), lr=self.params["lr"])
        steps = 0
        with seeded(budget.seed, device):
            self.train_mode(model)
            for _ in range(min(self.params["max_epochs"], budget.epochs)):
                order = torch.randperm(len(forget), generator=gen)
                for begin in range(0, len(order), budget.batch_size):
                    pairs = forget[order[begin : begin + budget.batch_size]]
                    loss = self.step_loss(model, graph, pairs, retain, forget_negatives, keep_negatives, gen)
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    steps += 1
                if self.should_stop(model, task):
                    break
        model.eval()
        self.decisions["steps"] = steps
        return model

    def step_loss(self, model, graph, pairs, retain, forget_negatives, keep_negatives, gen):
        device = model.device
        users, items = model(graph)
        loss = users.new_zeros(())
        if self.forget_mode is not None:
            batch = Batch(graph, pairs[:, 0].to(device), pairs[:, 1].to(device),
                          forget_negatives.sample(pairs[:, 0], gen).to(device))
            loss = loss + self.params["lambda_f"] * self.forget_loss(model, users, items, batch)
        if self.keep:
            kept = retain[torch.randint(len(retain), (len(pairs),), generator=gen)]
            batch = Batch(graph, kept[:, 0].to(device), kept[:, 1].to(device),
                          keep_negatives.sample(kept[:, 0], gen).to(device))
            loss = loss + bpr_loss(*pair_scores(users, items, batch))
        return loss

    def train_mode(self, model) -> None:
        """Put ``model`` in training mode for the steps (TRU keeps frozen modules' statistics)."""
        model.train()

    def should_stop(self, model, task) -> bool:
        """Checked after each pass over D_f; TRU stops at the non-member level."""
        return False


@METHODS.register("finetune")
class Finetune(ReverseUpdate):
    """Continue training on D_r only (same number of steps as the others)."""

    forget_mode = None
    hyperparameters = with_defaults(LR, MAX_EPOCHS, lr=0.0716, max_epochs=8)


@METHODS.register("neggrad")
class NegGrad(ReverseUpdate):
    """Gradient ascent on the BPR loss of D_f, nothing else."""

    forget_mode, keep = "ascent", False
    hyperparameters = with_defaults(LR, LAMBDA_F, MAX_EPOCHS, lr=0.0116, lambda_f=0.0432, max_epochs=6)


@METHODS.register("neggrad_plus")
class NegGradPlus(ReverseUpdate):
    """Gradient ascent on D_f plus descent on D_r."""

    forget_mode = "ascent"
    hyperparameters = with_defaults(LR, LAMBDA_F, MAX_EPOCHS, lr=0.0119, lambda_f=0.148, max_epochs=18)


@METHODS.register("mmrecun")
class MMRecUn(ReverseUpdate):
    """The uniform reverse update (MMRecUn; docs/tru.md): reverse BPR on D_f plus forward
    BPR on D_r over all parameters alike."""

    hyperparameters = with_defaults(LR, LAMBDA_F, MAX_EPOCHS, lr=0.0198, lambda_f=0.0824, max_epochs=18)
