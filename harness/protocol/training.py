"""Training with early stopping on validation Recall@20 (never on test).

Lifecycle: ``config = TrainConfig.for_backbone(cls, **overrides)`` ->
``train(model, train_pairs, valid_pairs, config, seed)`` -> :class:`TrainResult` with the
best-validation parameters. The test split is not an argument: it cannot leak into
model selection. Randomness (dropout, negatives, shuffling) is seeded by ``seed``
without touching the caller's RNG state, so a seed gives bit-identical results on CPU.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass, field

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tqdm import tqdm

from backbones.base import Backbone, Batch
from backbones.blocks.csr import pair_mask
from backbones.blocks.graph import UserItemGraph
from backbones.blocks.sampling import NegativeSampler
from harness.core.errors import UserError, one_line
from harness.core.seeding import generator, seeded
from harness.protocol.evaluation import evaluate_model

class TrainConfig(BaseModel):
    """Optimisation settings; backbones supply their reference defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: float = Field(1e-3, gt=0)
    lr_decay: float = Field(1.0, gt=0, le=1, description="multiplies lr after each epoch")
    batch_size: int = Field(2048, ge=1)
    max_epochs: int = Field(300, ge=1)
    patience: int = Field(40, ge=1, description="epochs without validation improvement")
    eval_every: int = Field(1, ge=1)
    metric: str = "recall@20"

    @classmethod
    def for_backbone(cls, backbone: type[Backbone], **overrides) -> "TrainConfig":
        """The backbone's reference defaults with ``overrides``; a bad key or value is a
        :class:`UserError` naming it."""
        try:
            return cls(**(dict(backbone.training_defaults) | overrides))
        except ValidationError as exc:
            raise one_line(exc, "training setting '{key}': {msg}") from None


@dataclass
class TrainResult:
    """Outcome of :func:`train`; ``state`` holds the best-validation parameters (CPU)."""

    state: dict
    best_epoch: int
    epochs_run: int
    seconds: float
    valid: dict
    history: list = field(default_factory=list)

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds / max(self.epochs_run, 1)


def train(
    model: Backbone,
    train_pairs: torch.Tensor,
    valid_pairs: torch.Tensor,
    config: TrainConfig,
    seed: int,
    progress: bool = True,
    description: str = "train",
) -> TrainResult:
    """Train ``model`` in place on ``train_pairs`` ([E, 2]); keep the best-validation state.

    Each epoch shuffles the pairs, draws one negative per pair outside the user's
    training items, and takes Adam steps on ``model.loss``. Every ``eval_every``
    epochs the validation ``config.metric`` is computed; training stops after
    ``patience`` epochs without a strict improvement, and the best state is loaded back.
    """
    device = model.device
    graph = UserItemGraph(train_pairs, model.n_users, model.n_items)
    valid_mask = pair_mask(valid_pairs, model.n_users, model.n_items)
    sampler = NegativeSampler(graph.edges, model.n_items)
    gen = generator(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma=config.lr_decay)
    best_score, best_epoch, best_state, best_valid = float("-inf"), 0, None, {}
    history = []
    start = time.perf_counter()
    epoch = 0
    bar = tqdm(
        range(1, config.max_epochs + 1), desc=description, file=sys.stderr,
        disable=not progress, leave=False, dynamic_ncols=True,
    )
    with seeded(seed, device):
        for epoch in bar:
            model.train()
            order = torch.randperm(len(graph.edges), generator=gen)
            total = 0.0
            for begin in range(0, len(order), config.batch_size):
                pairs = graph.edges[order[begin : begin + config.batch_size]]
                negatives = sampler.sample(pairs[:, 0], gen)
                batch = Batch(graph, pairs[:, 0].to(device), pairs[:, 1].to(device), negatives.to(device))
                loss = model.loss(batch)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += loss.item() * len(pairs)
            scheduler.step()
            record = {"epoch": epoch, "loss": total / len(order)}
            if epoch % config.eval_every == 0 or epoch == config.max_epochs:
                valid = evaluate_model(model, graph, valid_mask)
                record["valid"] = valid[config.metric]
                if valid[config.metric] > best_score:
                    best_score, best_epoch, best_valid = valid[config.metric], epoch, valid
                    best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
                bar.set_postfix(loss=f"{record['loss']:.4f}", valid=f"{record['valid']:.4f}", best=best_epoch)
            history.append(record)
            if epoch - best_epoch >= config.patience:
                break
    seconds = time.perf_counter() - start
    model.load_state_dict(best_state)
    return TrainResult(best_state, best_epoch, epoch, seconds, best_valid, history)
