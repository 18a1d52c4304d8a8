"""Full-ranking top-K evaluation: vectorised, batched over users, no per-user loop.

Protocol (MMRec): every item is a candidate except the ``exclude`` ones (the user's
training items); metrics are averaged over the users with at least one ``truth`` item.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from backbones.base import Backbone, eval_embeddings
from backbones.blocks.csr import dense_rows, pair_mask, row_counts
from backbones.blocks.graph import UserItemGraph

ScoreFn = Callable[[torch.Tensor], torch.Tensor]  # row indices [B] -> scores [B, I]


def metrics_from_hits(hits: torch.Tensor, n_truth: torch.Tensor, ks: Sequence[int]) -> dict[str, torch.Tensor]:
    """Per-user metrics from the ranked truth indicators ``hits`` ``[B, K_max]`` (``h_k``:
    is the item at rank k a truth item) and the truth counts ``n_truth`` ``[B]`` (>= 1).

    recall@K = sum_{k<=K} h_k / n; precision@K = sum_{k<=K} h_k / K;
    hit@K = [sum_{k<=K} h_k > 0]; NDCG@K = sum_{k<=K} h_k / log2(k+1) divided by the
    ideal sum_{k <= min(n, K)} 1 / log2(k+1) (binary gains). Ties in score are ordered
    by ``torch.topk``.
    """
    kmax = hits.shape[1]
    hits = hits.float()
    n_truth = n_truth.float().to(hits.device)
    discount = 1.0 / torch.log2(torch.arange(2, kmax + 2, device=hits.device, dtype=torch.float))
    ideal = torch.cumsum(discount, 0)
    out = {}
    for k in ks:
        kk = min(k, kmax)
        found = hits[:, :kk].sum(1)
        out[f"recall@{k}"] = found / n_truth
        out[f"precision@{k}"] = found / k
        out[f"hit@{k}"] = (found > 0).float()
        idcg = ideal[(n_truth.clamp(max=kk) - 1).long()]
        out[f"ndcg@{k}"] = (hits[:, :kk] * discount[:kk]).sum(1) / idcg
    return out


def _pair_keys(mask: torch.Tensor) -> torch.Tensor:
    """Sorted ``row * I + col`` keys of the set entries of a boolean mask (dense or CSR)."""
    if mask.layout == torch.sparse_csr:
        crow, col = mask.crow_indices(), mask.col_indices()
        rows = torch.repeat_interleave(torch.arange(mask.shape[0], device=crow.device), crow.diff())
        keep = mask.values() != 0
        keys = rows[keep] * mask.shape[1] + col[keep]
        return keys if bool((keys.diff() >= 0).all()) else keys.sort().values
    return mask.reshape(-1).nonzero().squeeze(1)


def _exclude(scores: torch.Tensor, exclude: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``scores`` with ``-inf`` where ``exclude[rows[b], i]``.

    A contiguous ``scores`` (fresh from a score function) is masked in place; for a CSR
    mask and contiguous rows (the usual case) the flat positions are a slice of the CSR
    arrays, so no dense mask is built. Anything else (a broadcast view, say) is masked
    out of place and left untouched.
    """
    contiguous = len(rows) and int(rows[-1] - rows[0]) + 1 == len(rows) and bool((rows.diff() == 1).all())
    if not scores.is_contiguous():
        return scores.masked_fill(dense_rows(exclude, rows).to(scores.device), float("-inf"))
    if exclude.layout != torch.sparse_csr or not contiguous:
        return scores.masked_fill_(dense_rows(exclude, rows).to(scores.device), float("-inf"))
    crow, col = exclude.crow_indices(), exclude.col_indices()
    a, b = int(rows[0]), int(rows[-1]) + 1
    start, end = int(crow[a]), int(crow[b])
    local_rows = torch.repeat_interleave(torch.arange(b - a, device=crow.device), crow[a : b + 1].diff())
    flat = local_rows * scores.shape[1] + col[start:end]
    flat = flat[exclude.values()[start:end] != 0]
    return scores.view(-1).index_fill_(0, flat.to(scores.device), float("-inf")).view(scores.shape)


def metrics_from_scores(
    score_rows: ScoreFn,
    exclude: torch.Tensor,
    truth: torch.Tensor,
    ks: Sequence[int] = (10, 20),
    batch_size: int = 1024,
) -> dict[str, float]:
    """Average :func:`metrics_from_hits` over the users with truth, ``batch_size`` at a time.

    ``score_rows(rows)`` returns the ``[len(rows), I]`` scores of those users (a
    contiguous result is taken as fresh and masked in place), so the full
    ``users x items`` matrix never has to exist at once.
    Truth membership of the top-K is a sorted-key lookup: no dense truth matrix.
    """
    counts = row_counts(truth)
    users = (counts > 0).nonzero().squeeze(1)
    keys = _pair_keys(truth)
    n_items = truth.shape[1]
    kmax = min(max(ks), n_items)
    totals: dict[str, float] = {}
    for start in range(0, len(users), batch_size):
        rows = users[start : start + batch_size]
        scores = _exclude(score_rows(rows), exclude, rows)
        top_scores, top = scores.topk(kmax, dim=1)
        wanted = (rows.to(top.device)[:, None] * n_items + top).reshape(-1).to(keys.device)
        found = keys[torch.searchsorted(keys, wanted).clamp_(max=len(keys) - 1)] == wanted
        hits = found.reshape(top.shape).to(top.device) & torch.isfinite(top_scores)
        for key, value in metrics_from_hits(hits, counts[rows], ks).items():
            totals[key] = totals.get(key, 0.0) + float(value.sum())
    n = max(len(users), 1)
    return {key: value / n for key, value in sorted(totals.items())}


def rank_metrics(
    scores: torch.Tensor,
    exclude: torch.Tensor,
    truth: torch.Tensor,
    ks: Sequence[int] = (10, 20),
    batch_size: int = 1024,
) -> dict[str, float]:
    """Full-ranking recall / NDCG / precision / hit at each K.

    ``scores`` float ``[users, items]``; ``exclude`` and ``truth`` boolean of the same
    shape, dense or sparse CSR. Items in ``exclude`` are never recommended. Returns
    ``{"recall@K", "ndcg@K", "precision@K", "hit@K"}`` averaged over users with at
    least one truth item (definitions in :func:`metrics_from_hits`).
    """
    if exclude.shape != scores.shape or truth.shape != scores.shape:
        raise ValueError(
            f"shapes differ: scores {tuple(scores.shape)}, exclude {tuple(exclude.shape)}, "
            f"truth {tuple(truth.shape)}"
        )
    return metrics_from_scores(lambda rows: scores[rows.to(scores.device)].clone(), exclude, truth, ks, batch_size)


def embedding_scorer(user_emb: torch.Tensor, item_emb: torch.Tensor) -> ScoreFn:
    """Dot-product scores ``U[rows] @ I^T`` as a :data:`ScoreFn`."""
    return lambda rows: user_emb[rows.to(user_emb.device)] @ item_emb.T


@torch.no_grad()
def evaluate_model(
    model: Backbone,
    graph: UserItemGraph,
    truth: torch.Tensor,
    exclude: torch.Tensor | None = None,
    ks=(10, 20),
) -> dict[str, float]:
    """Full-ranking metrics of ``model`` on ``graph``; ``truth`` pairs ``[n, 2]`` or a mask.

    ``exclude`` defaults to the graph's training items (MMRec protocol). Runs in eval
    mode under :data:`backbones.base.EVAL_SEED`, so repeated evaluations agree.
    """
    users, items = eval_embeddings(model, graph)
    if truth.layout == torch.strided and truth.dtype == torch.long:
        truth = pair_mask(truth, graph.n_users, graph.n_items)
    exclude = graph.user_items_csr() if exclude is None else exclude
    return metrics_from_scores(embedding_scorer(users, items), exclude, truth, ks)
