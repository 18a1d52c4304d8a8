"""Boolean CSR masks ``[N, I]`` (dense or sparse CSR): build from pairs, read rows, count.

Evaluation excludes a user's training items with such masks; TRU reads the excluded
entries of candidate rows from them.
"""

from __future__ import annotations

import torch

from backbones.blocks.graph import UserItemGraph


def pair_mask(pairs: torch.Tensor, n_users: int, n_items: int) -> torch.Tensor:
    """Boolean CSR ``[U, I]`` with ``True`` at each ``(user, item)`` pair of ``pairs`` ``[n, 2]``."""
    return UserItemGraph(pairs, n_users, n_items).user_items_csr()


def row_entries(mask: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The set entries of rows ``rows`` of a boolean ``[N, I]`` mask (dense or sparse CSR):
    ``(out_rows, cols)``, row-major, ``out_rows`` indexing into ``rows``."""
    if mask.layout != torch.sparse_csr:
        out_rows, cols = mask[rows.to(mask.device)].bool().nonzero(as_tuple=True)
        return out_rows, cols
    crow, col, values = mask.crow_indices(), mask.col_indices(), mask.values()
    rows = rows.to(crow.device)
    starts = crow[rows]
    counts = crow[rows + 1] - starts
    offsets = torch.cumsum(counts, 0) - counts  # where each row's entries start in the output
    source = torch.arange(int(counts.sum()), device=crow.device) + torch.repeat_interleave(
        starts - offsets, counts
    )
    out_rows = torch.repeat_interleave(torch.arange(len(rows), device=crow.device), counts)
    keep = values[source] != 0
    return out_rows[keep], col[source][keep]


def dense_rows(mask: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Rows ``rows`` of a boolean ``[N, I]`` mask (dense or sparse CSR) as a dense ``[B, I]``."""
    if mask.layout != torch.sparse_csr:
        return mask[rows.to(mask.device)].bool()
    out_rows, cols = row_entries(mask, rows)
    dense = torch.zeros(len(rows), mask.shape[1], dtype=torch.bool, device=cols.device)
    dense[out_rows, cols] = True
    return dense


def row_counts(mask: torch.Tensor) -> torch.Tensor:
    """Number of set entries per row of a boolean mask (dense or sparse CSR), ``[N]``."""
    if mask.layout == torch.sparse_csr:
        crow = mask.crow_indices()
        return crow[1:] - crow[:-1]
    return mask.sum(1)
