"""The Newton step of influence-function unlearning, and its solvers.

Removing the deleted data from the training objective moves the optimum, to second
order, by one Newton step on the retained loss (Koh & Liang, ICML 2017; for graphs GIF,
Wu et al., WWW 2023, and IFRU, Zhang et al., TORS 2024):

    theta <- theta0 + tau * (H + lambda I)^{-1} g / n

* ``H``: the Hessian of the mean retained training loss at ``theta0``, restricted to the
  entries the method updates (the others stay at ``theta0``); ``lambda I`` damps it.
* ``g``: the gradient of the summed training loss of what the deletion removes. Because
  ``theta0`` minimises the full loss, ``-grad L_r(theta0; G_r) = grad L_f(theta0; G) +
  grad [L_A(theta0; G) - L_A(theta0; G_r)]``, where the second term, the *graph term*,
  is the loss of the retained pairs ``A`` whose embeddings the deletion changes, on the
  old graph minus on ``G_r``.
* ``n = |D_r|``; ``tau`` (1 in the derivation) is a scale the methods expose.

This module solves ``(H + lambda I) x = b`` for ``b = g / n`` in a subspace of the
parameters, with Hessian-vector products by double backward (Pearlmutter's trick: ``Hv =
d/dtheta (grad L . v)``; one backward pass through the retained first-order graph):

* **Conjugate gradient** (:func:`conjugate_gradient`): exact in exact arithmetic after as
  many steps as the subspace has dimensions; stops at ``||r|| <= tol ||b||``, after
  ``max_products`` products, or where ``H + lambda I`` shows negative curvature along
  its search direction (a non-convex loss with too little damping), keeping what it
  solved so far (truncated Newton).
* **LiSSA** (:func:`lissa`; Agarwal et al., JMLR 2017, as GIF uses it): ``h_0 = b``,
  ``h_t = b + h_{t-1} - (H + lambda I) h_{t-1} / s``, ``x = h_T / s``. Its fixed point
  is ``(H + lambda I) x = b``; it converges when every eigenvalue of ``H + lambda I``
  lies in ``(0, 2s)``. GIF's recursion ``h_t = v + (1 - d) h_{t-1} - H h_{t-1} / s``
  is this one with ``lambda = d s``.

Cost: each solver stops after at most ``max_products`` Hessian-vector products (the
methods' ``iterations``), each about one backward pass of the loss the Hessian is of.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

Vector = torch.Tensor  # a flat vector over the entries of a :class:`Subspace`


@dataclass
class Subspace:
    """The entries of some parameters that an update may move: per parameter, all of it
    (``rows = None``) or the given rows (``rows``: LongTensor of row indices)."""

    params: list[torch.nn.Parameter]
    rows: list[torch.Tensor | None]

    @property
    def size(self) -> int:
        return sum(p.numel() if r is None else len(r) * p[0].numel() for p, r in zip(self.params, self.rows))

    def flatten(self, tensors) -> Vector:
        """The subspace's entries of full-shaped ``tensors`` (one per parameter; ``None`` is 0)."""
        parts = []
        for p, r, t in zip(self.params, self.rows, tensors):
            t = torch.zeros_like(p) if t is None else t
            parts.append((t if r is None else t[r]).reshape(-1))
        return torch.cat(parts) if parts else torch.zeros(0)

    def unflatten(self, x: Vector) -> list[torch.Tensor]:
        """Full-shaped tensors, zero outside the subspace, holding ``x``."""
        out, start = [], 0
        for p, r in zip(self.params, self.rows):
            full = torch.zeros_like(p)
            if r is None:
                full.copy_(x[start : start + p.numel()].view_as(p))
                start += p.numel()
            else:
                n = len(r) * p[0].numel()
                full[r] = x[start : start + n].view((len(r),) + p.shape[1:])
                start += n
            out.append(full)
        return out

    @torch.no_grad()
    def add_(self, x: Vector) -> None:
        """``theta += x`` on the subspace's entries."""
        for p, d in zip(self.params, self.unflatten(x)):
            p.add_(d)


def gradient(loss: torch.Tensor, space: Subspace) -> Vector:
    """``d loss / d theta`` on the subspace."""
    grads = torch.autograd.grad(loss, space.params, allow_unused=True)
    return space.flatten(grads).detach()


def hessian_vector_product(loss_fn: Callable[[], torch.Tensor], space: Subspace) -> Callable[[Vector], Vector]:
    """``v -> H v`` on the subspace, ``H`` the Hessian of ``loss_fn()`` at the current
    parameters. The first-order graph is built once and kept for every product."""
    loss = loss_fn()
    grads = torch.autograd.grad(loss, space.params, create_graph=True, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(space.params, grads)]

    def product(v: Vector) -> Vector:
        dot = sum((g * u).sum() for g, u in zip(grads, space.unflatten(v)))
        if not dot.requires_grad:  # a loss linear in the subspace
            return torch.zeros_like(v)
        hv = torch.autograd.grad(dot, space.params, retain_graph=True, allow_unused=True)
        return space.flatten(hv).detach()

    return product


@dataclass
class Solution:
    x: Vector
    products: int  # Hessian-vector products spent
    residual: float  # ||(H + lambda I) x - b|| / ||b|| at the end (CG: its recurrence; LiSSA: measured)
    stopped: str = "cap"  # "converged", "cap" or "negative curvature" (CG met p^T (H + lambda I) p <= 0)


def conjugate_gradient(hvp: Callable[[Vector], Vector], b: Vector, damping: float, max_products: int,
                       tol: float = 1e-6) -> Solution:
    """Solve ``(H + damping I) x = b`` by conjugate gradient from ``x = 0`` (``H``
    symmetric; positive definite with the damping)."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = float(r @ r)
    norm_b = max(rr ** 0.5, 1e-30)
    products, stopped = 0, "cap"
    while products < max_products:
        if rr ** 0.5 <= tol * norm_b:
            stopped = "converged"
            break
        ap = hvp(p) + damping * p
        products += 1
        curvature = float(p @ ap)
        if curvature <= 0:  # not positive definite along p (too little damping): stop with what is solved
            stopped = "negative curvature"
            break
        alpha = rr / curvature
        x += alpha * p
        r -= alpha * ap
        rr_next = float(r @ r)
        p = r + (rr_next / rr) * p
        rr = rr_next
    if stopped == "cap" and rr ** 0.5 <= tol * norm_b:
        stopped = "converged"
    return Solution(x, products, rr ** 0.5 / norm_b, stopped)


def lissa(hvp: Callable[[Vector], Vector], b: Vector, damping: float, scale: float, max_products: int) -> Solution:
    """Solve ``(H + damping I) x = b`` by the LiSSA recursion of the module docstring:
    ``max_products - 1`` recursion steps and one product measuring the residual.
    ``stopped`` is ``"diverging"`` when that residual exceeds 1 (worse than ``x = 0``:
    ``scale`` is too small for the largest eigenvalue), else ``"cap"``."""
    h = b.clone()
    for _ in range(max(max_products - 1, 0)):
        h = b + h - (hvp(h) + damping * h) / scale
        if not torch.isfinite(h).all():
            raise FloatingPointError(f"LiSSA diverged: scale {scale} is below half the largest eigenvalue of H + damping I")
    x = h / scale
    residual = hvp(x) + damping * x - b
    relative = float(residual.norm() / max(float(b.norm()), 1e-30))
    return Solution(x, max_products, relative, "diverging" if relative > 1.0 else "cap")
