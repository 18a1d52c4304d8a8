"""An adapter that runs a stack of ``torch_geometric.nn`` message-passing layers on the
harness's user-item graph: any PyG convolution becomes a backbone without glue code.

Nodes are users then items (``N = U + I``). The PyG ``edge_index`` ``[2, 2E]`` holds each
training pair ``(u, i)`` in both directions, ``u -> U + i`` and ``U + i -> u``; it is
built from a :class:`~backbones.blocks.graph.UserItemGraph` on first use and cached on
that graph object, so the retained graph ``G_r`` after a deletion gets its own.

``E^{(0)} = [E_u; E_i]`` ``[N, d]`` (ID embeddings, Xavier uniform; content features are
ignored, as in LightGCN), ``E^{(l+1)} = conv_l(E^{(l)}, edge_index)`` ``[N, d]`` for
``l = 0..L-1``, final ``E = mean_{l=0..L} E^{(l)}`` (``combine="mean"``, as LightGCN) or
``E = E^{(L)}`` (``combine="last"``), split into users ``[U, d]`` and items ``[I, d]``;
score ``s(u, i) = e_u . e_i``. With ``conv="LGConv"`` each layer is
``E^{(l+1)} = D^{-1/2} A D^{-1/2} E^{(l)}`` over ``A = [[0, R], [R^T, 0]]``: LightGCN.
Layers whose constructor takes ``in_channels`` / ``out_channels`` get ``(d, d)`` (each
must output ``[N, d]``: for ``GATConv`` with several heads pass ``concat=false``);
``conv_kwargs`` adds constructor arguments (the same for every layer). No activation
between layers: a conv with one of its own (``act=...``) brings it.

Loss: BPR + ``reg_weight * 0.5 (||e_u^0||^2 + ||e_i^0||^2 + ||e_j^0||^2) / B`` on the
layer-0 rows of the batch (LightGCN's regulariser). Defaults: LightGCN's (64-d, 2 layers,
lr 1e-3, batch 2048).

``torch_geometric.nn`` takes about 3 s to import (2 cores), so it is imported when a ``pyg``
backbone is validated or built, not when the registry is: every actor and command that
imports the backbones would pay it otherwise.
"""

from __future__ import annotations

import inspect
import json
from typing import Any, Literal, Mapping

import torch
from torch import nn

from backbones import BACKBONES
from backbones.base import Depth, ParamSpec, Size, Weight
from backbones.lightgcn import LightGCN
from backbones.blocks.graph import UserItemGraph
from harness.core.errors import UserError

#: constructor arguments the adapter sets itself (the widths)
_WIDTHS = ("in_channels", "out_channels")


def _pyg_nn():
    import torch_geometric.nn as pyg_nn  # heavy: kept off the import of the registry (module docstring)

    return pyg_nn


def conv_class(name: str) -> type:
    """The ``torch_geometric.nn`` message-passing class called ``name``; anything else is a
    :class:`UserError` naming it."""
    pyg_nn = _pyg_nn()
    found = getattr(pyg_nn, name, None) if isinstance(name, str) and not name.startswith("_") else None
    if found is None:
        raise UserError(f"backbone 'pyg': conv '{name}' is not a class in torch_geometric.nn (e.g. LGConv, "
                        "GCNConv, SAGEConv, GATConv, GraphConv)")
    if found is pyg_nn.MessagePassing:
        raise UserError(f"backbone 'pyg': conv '{name}' is the abstract base class, not a layer (e.g. LGConv)")
    if not (inspect.isclass(found) and issubclass(found, pyg_nn.MessagePassing)):
        raise UserError(f"backbone 'pyg': conv '{name}' is not a torch_geometric.nn MessagePassing layer")
    return found


def make_conv(name: str, kwargs: Mapping[str, Any], dim: int) -> nn.Module:
    """One layer ``name(**widths, **kwargs)`` with ``widths`` = ``in_channels=dim`` /
    ``out_channels=dim`` where the constructor takes them; a bad argument is a
    :class:`UserError` naming the conv and the arguments."""
    cls = conv_class(name)
    if not isinstance(kwargs, Mapping):
        raise UserError(f"backbone 'pyg': conv_kwargs must be an object of constructor arguments, got {kwargs!r}")
    clash = [key for key in kwargs if key in _WIDTHS]
    if clash:
        raise UserError(f"backbone 'pyg': conv_kwargs must not set {', '.join(clash)} (the adapter sets the widths to dim)")
    params = inspect.signature(cls.__init__).parameters
    widths = {key: dim for key in _WIDTHS if key in params}
    try:
        return cls(**widths, **kwargs)
    except Exception as exc:  # TypeError / ValueError / AssertionError of the conv's constructor
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(f"backbone 'pyg': conv '{name}' with conv_kwargs {json.dumps(dict(kwargs), default=str)}: "
                        f"{message}") from None


@BACKBONES.register("pyg")
class PyGBackbone(LightGCN):
    """Any torch_geometric.nn message-passing layer (LGConv, GCNConv, SAGEConv, GATConv, ...) stacked over the user-item graph, ID embeddings only.

    ``conv`` names the layer class, ``conv_kwargs`` its extra constructor arguments;
    ``combine`` is ``mean`` over the layer outputs (LightGCN) or ``last``. See the module
    docstring for formulas and shapes.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        features: Mapping[str, torch.Tensor] | None = None,
        conv: str = "LGConv",
        conv_kwargs: Mapping[str, Any] | None = None,
        dim: Size = 64,
        layers: Depth = 2,
        combine: Literal["mean", "last"] = "mean",
        reg_weight: Weight = 1e-4,
    ):
        if combine not in ("mean", "last"):
            raise UserError(f"backbone 'pyg': hyperparameter 'combine': Input should be 'mean' or 'last' (got {combine!r})")
        # LightGCN's tables, loss and regulariser, drawn first: with a parameter-free conv
        # (LGConv) a seed gives exactly LightGCN's parameters
        super().__init__(n_users, n_items, None, dim, layers, reg_weight)
        self.conv_name, self.conv_kwargs, self.combine = conv, dict(conv_kwargs or {}), combine
        self.convs = nn.ModuleList(make_conv(conv, self.conv_kwargs, dim) for _ in range(layers))

    @classmethod
    def validate_hparams(cls, hparams: Mapping) -> dict:
        """The base checks, then the conv is built once (off torch's RNG) so an unknown
        conv or a bad argument fails when an experiment is read, not when it trains."""
        checked = super().validate_hparams(hparams)
        merged = cls.hyperparameter_defaults() | checked
        with torch.random.fork_rng(devices=[]):
            make_conv(merged["conv"], dict(merged["conv_kwargs"] or {}), merged["dim"])
        return checked

    def reset_parameters(self):
        super().reset_parameters()
        for conv in getattr(self, "convs", ()):  # none yet while LightGCN's constructor runs
            if hasattr(conv, "reset_parameters"):
                conv.reset_parameters()

    @staticmethod
    def edge_index(graph: UserItemGraph, device="cpu") -> torch.Tensor:
        """``[2, 2E]``: every pair ``(u, i)`` as ``u -> U + i`` and ``U + i -> u``; cached on ``graph``."""

        def build():
            users, items = graph.edges[:, 0], graph.edges[:, 1] + graph.n_users
            return torch.stack([torch.cat([users, items]), torch.cat([items, users])])

        return graph._cached(("pyg_edge_index",), device, build)

    def forward(self, graph: UserItemGraph):
        x = torch.cat([self.user_embedding, self.item_embedding])
        edge_index = self.edge_index(graph, x.device)
        outputs = [x]
        for conv in self.convs:
            x = conv(x, edge_index)
            if not isinstance(x, torch.Tensor) or x.shape != outputs[0].shape:
                shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
                raise UserError(f"backbone 'pyg': conv '{self.conv_name}' returned {shape}, not "
                                f"({graph.n_nodes}, {self.dim}) node embeddings (for GATConv with heads > 1 "
                                "pass concat=false)")
            outputs.append(x)
        final = torch.stack(outputs).mean(0) if self.combine == "mean" else outputs[-1]
        return final[: self.n_users], final[self.n_users :]

    def parameter_specs(self):
        moved = (self.n_users + self.n_items) * self.dim  # every conv tensor moves every node's embedding
        return super().parameter_specs() + [
            ParamSpec(f"convs.{name}", "id", produces=moved) for name, _ in self.convs.named_parameters()]
