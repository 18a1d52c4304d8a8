"""The backbone contract shared by every multimodal recommender of the harness.

Lifecycle of a :class:`Backbone`:

1. Built from explicit arguments: ``cls(n_users, n_items, features, **hparams)`` with
   ``features`` a mapping ``modality -> float tensor [n_items, dim]`` (no file I/O, no
   Ray, no global state). Parameters are initialised in ``reset_parameters()`` from
   torch's RNG: build it inside :func:`harness.core.seeding.seeded` for a fixed seed.
2. ``forward(graph)`` -> ``(users [U, d], items [I, d])``: final embeddings when
   propagating over ``graph`` (a :class:`backbones.blocks.graph.UserItemGraph`). The backbone
   keeps no interaction graph of its own, so running it on the retained graph ``G_r``
   after a deletion is ``forward(G_r)``: rebuilt without retraining.
3. ``loss(batch)`` -> scalar: BPR plus the backbone's own terms.
4. ``parameter_specs()`` names each parameter's **branch** (``id``, one per modality,
   ``fusion``) and says whether its rows are user or item rows (an embedding table,
   split into touched/untouched units by TRU) or what it moves when shared (capacity).
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from torch import nn

from backbones.blocks.graph import SparseMatrix, UserItemGraph
from backbones.blocks.losses import bpr_loss
from harness.core.errors import UserError, one_line
from harness.core.seeding import seeded

EVAL_SEED = 20_250_101  # fixed seed for any sampling a backbone does at evaluation

#: hyperparameter types with ranges (pydantic constraints, checked and listed by ``tru backbones``)
Size = typing.Annotated[int, Field(ge=1)]  # a width, a count of samples or neighbours
Depth = typing.Annotated[int, Field(ge=0)]  # layers or hops
Weight = typing.Annotated[float, Field(ge=0.0)]  # a loss weight, a diffusion coefficient
Rate = typing.Annotated[float, Field(ge=0.0, lt=1.0)]  # a dropout probability
Temperature = typing.Annotated[float, Field(gt=0.0)]


@dataclass(frozen=True)
class ParamSpec:
    """How TRU sees one parameter tensor.

    ``rows``: ``"user"`` / ``"item"`` if row ``r`` of the tensor belongs to user / item
    ``r`` (embedding tables, per-item feature tables), else ``None`` (a shared tensor).
    ``produces``: for a shared tensor, the number of embedding entries it moves (a
    modality projection moves every item's modality embedding: ``n_items * dim``);
    capacity is ``max(numel, produces)`` (docs/tru.md, capacity-aware layer isolation).
    """

    name: str
    branch: str
    rows: str | None = None
    produces: int = 0


@dataclass
class Batch:
    """A training batch: ``users``, ``pos_items``, ``neg_items`` LongTensors ``[B]``."""

    graph: UserItemGraph
    users: torch.Tensor
    pos_items: torch.Tensor
    neg_items: torch.Tensor


_NOT_HPARAMS = {"self", "n_users", "n_items", "features"}


class Backbone(nn.Module):
    """Base class; see the module docstring for the lifecycle."""

    name: ClassVar[str] = ""
    #: minimum number of content modalities the model needs
    min_modalities: ClassVar[int] = 0
    #: training settings of the reference implementation (see harness.protocol.training.TrainConfig)
    training_defaults: ClassVar[dict] = {}

    def __init__(self, n_users: int, n_items: int, features: Mapping[str, torch.Tensor]):
        super().__init__()
        if len(features) < self.min_modalities:
            raise ValueError(
                f"{type(self).__name__} needs at least {self.min_modalities} modality, "
                f"got {len(features)}"
            )
        self.n_users = n_users
        self.n_items = n_items
        self.modalities = list(features)

    def forward(self, graph: UserItemGraph) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    # ------------------------------------------------------------------ hyperparameters
    # A backbone declares its hyperparameters as keyword arguments of ``__init__`` with a
    # type hint and a default; a range is a pydantic constraint in the hint, e.g.
    # ``layers: Annotated[int, Field(ge=1)] = 2``.

    @classmethod
    def hyperparameter_defaults(cls) -> dict:
        """``{name: default}`` of the constructor's keyword hyperparameters."""
        signature = inspect.signature(cls.__init__)
        return {k: p.default for k, p in signature.parameters.items() if k not in _NOT_HPARAMS}

    @classmethod
    def _hyperparameter_model(cls) -> type[BaseModel]:
        hints = typing.get_type_hints(cls.__init__, include_extras=True)
        fields = {key: (hints.get(key, Any), default) for key, default in cls.hyperparameter_defaults().items()}
        return create_model(f"{cls.name or cls.__name__}_hyperparameters", __config__=ConfigDict(extra="forbid"),
                            **fields)

    @classmethod
    def validate_hparams(cls, hparams: Mapping) -> dict:
        """``hparams`` checked against the constructor's names, type hints and ranges; an
        unknown name or a bad value is a :class:`UserError` naming it. Returns the given
        ones (defaults are left to the constructor)."""
        known = cls.hyperparameter_defaults()
        for key in hparams:
            if key not in known:
                raise UserError(f"backbone '{cls.name}': unknown hyperparameter '{key}' (valid: {', '.join(known)})")
        try:
            return cls._hyperparameter_model()(**hparams).model_dump(exclude_unset=True)
        except ValidationError as exc:
            raise one_line(exc, f"backbone '{cls.name}': hyperparameter '{{key}}': {{msg}}") from None

    @classmethod
    def describe(cls) -> dict:
        """``{name: {"type", "default", "low", "high"[, "range"]}}`` of each hyperparameter
        (``low`` / ``high``: the bounds of its range, ``None`` where it has none; ``range``:
        the interval as text, e.g. ``[0.0, 1.0)``)."""
        out = {}
        for name, field in cls._hyperparameter_model().model_fields.items():
            low = high = None
            left, right = "(", ")"  # open ends, also for a missing bound (-inf, inf)
            for constraint in field.metadata:
                for attr, bracket in (("ge", "["), ("gt", "(")):
                    if getattr(constraint, attr, None) is not None:
                        low, left = getattr(constraint, attr), bracket
                for attr, bracket in (("le", "]"), ("lt", ")")):
                    if getattr(constraint, attr, None) is not None:
                        high, right = getattr(constraint, attr), bracket
            kind = field.annotation
            out[name] = {"type": kind.__name__ if isinstance(kind, type) else str(kind).replace("typing.", ""),
                         "default": field.default, "low": low, "high": high}
            if low is not None or high is not None:
                out[name]["range"] = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        return out

    def loss(self, batch: Batch) -> torch.Tensor:
        users, items = self(batch.graph)
        return self.ranking_loss(users, items, batch)

    @staticmethod
    def ranking_loss(users: torch.Tensor, items: torch.Tensor, batch: Batch) -> torch.Tensor:
        """BPR of the batch from final embeddings."""
        u = gather_rows(users, batch.users)
        pos = (u * gather_rows(items, batch.pos_items)).sum(1)
        neg = (u * gather_rows(items, batch.neg_items)).sum(1)
        return bpr_loss(pos, neg)

    def parameter_specs(self) -> list[ParamSpec]:
        raise NotImplementedError

    def init_embedding_(self, table: torch.Tensor) -> torch.Tensor:
        """Initialise an embedding table in place as the backbone does (Xavier uniform)."""
        return nn.init.xavier_uniform_(table)

    @torch.no_grad()
    def redraw_rows(self, kind: str, index: torch.Tensor) -> None:
        """Re-draw the ``id``-branch rows of users / items ``index`` from the backbone's
        initialisation (torch's RNG): they become as if new (TRU's non-member level)."""
        params = dict(self.named_parameters())
        for spec in self.parameter_specs():
            if spec.rows == kind and spec.branch == "id":
                table = params[spec.name]
                fresh = self.init_embedding_(torch.empty_like(table))
                table[index.to(table.device)] = fresh[index.to(table.device)]

    def branches(self) -> dict[str, list[str]]:
        """``branch -> [parameter names]`` in declaration order."""
        out: dict[str, list[str]] = {}
        for spec in self.parameter_specs():
            out.setdefault(spec.branch, []).append(spec.name)
        return out

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


@torch.no_grad()
def eval_embeddings(model: Backbone, graph: UserItemGraph) -> tuple[torch.Tensor, torch.Tensor]:
    """Final embeddings ``(users [U, d], items [I, d])`` in eval mode under :data:`EVAL_SEED`
    (repeatable even for backbones that sample at evaluation); the model's train/eval
    mode is restored."""
    was_training = model.training
    model.eval()
    try:
        with seeded(EVAL_SEED, model.device):
            return model(graph)
    finally:
        model.train(was_training)


def gather_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` (``[n, ...]`` rows for an index of any shape), deterministic.

    Plain advanced indexing back-propagates through ``index_put_(accumulate=True)``,
    whose parallel CPU kernel adds repeated rows in a varying order: the same seed then
    gave different gradients from run to run. ``F.embedding`` accumulates in a fixed order.
    """
    if table.dim() == 2:
        return F.embedding(index, table)
    flat = F.embedding(index.reshape(-1), table.reshape(len(table), -1))
    return flat.reshape(*index.shape, *table.shape[1:])


def xavier_linear(in_features: int, out_features: int, bias: bool = True) -> nn.Linear:
    """``nn.Linear`` with Xavier-uniform weights and zero bias."""
    layer = nn.Linear(in_features, out_features, bias=bias)
    nn.init.xavier_uniform_(layer.weight)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


def propagate(adjacency: SparseMatrix, x: torch.Tensor, layers: int) -> list[torch.Tensor]:
    """``[x, A x, A^2 x, ...]`` (``layers + 1`` tensors) for a sparse ``adjacency``."""
    out = [x]
    for _ in range(layers):
        out.append(adjacency @ out[-1])
    return out
