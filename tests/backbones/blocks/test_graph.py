import torch

from backbones.blocks.graph import SparseMatrix, UserItemGraph, knn_graph

EDGES = torch.tensor([[0, 0], [0, 2], [1, 1], [2, 2], [2, 0]])


def _dense_adjacency(self_loops):
    n_users = 3
    a = torch.zeros(6, 6)
    for u, i in EDGES.tolist():
        a[u, n_users + i] = a[n_users + i, u] = 1
    if self_loops:
        a += torch.eye(6)
    d = a.sum(1).pow(-0.5)
    d[torch.isinf(d)] = 0
    return d[:, None] * a * d[None, :]


def test_adjacency_matches_dense_formula():
    g = UserItemGraph(EDGES, 3, 3)
    for loops in (False, True):
        assert torch.allclose(g.adjacency(self_loops=loops).to_dense(), _dense_adjacency(loops))


def test_user_item_block_is_the_adjacency_block():
    g = UserItemGraph(EDGES, 3, 3)
    assert torch.allclose(g.user_item().to_dense(), _dense_adjacency(False)[:3, 3:])


def test_matrices_are_cached_per_graph_and_rebuilt_for_a_new_graph():
    g = UserItemGraph(EDGES, 3, 3)
    assert g.adjacency() is g.adjacency()
    smaller = UserItemGraph(EDGES[:3], 3, 3)
    assert not torch.allclose(smaller.adjacency().to_dense(), g.adjacency().to_dense())


def test_sparse_matmul_gradient_matches_dense():
    g = UserItemGraph(EDGES, 3, 3)
    a = g.user_item()  # not symmetric: [3, 3] user-item block
    x = torch.randn(3, 4, requires_grad=True)
    (a @ x).pow(2).sum().backward()
    expected = x.detach().clone().requires_grad_(True)
    (a.to_dense() @ expected).pow(2).sum().backward()
    assert torch.allclose(x.grad, expected.grad, atol=1e-6)


def test_with_values_keeps_the_transpose_consistent():
    m = SparseMatrix.from_csr(torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]]).to_sparse_csr())
    doubled = m.with_values(m.values() * 2)
    assert torch.allclose(doubled.t.to_dense(), (m.to_dense() * 2).T)


def test_knn_graph_keeps_k_neighbours_and_is_normalised():
    feats = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    s = knn_graph(feats, k=2).to_dense()
    assert ((s > 0).sum(1) == 2).all()
    assert s[0, 1] > 0 and s[0, 2] == 0  # nearest neighbour kept, far one dropped
    raw = torch.nn.functional.normalize(feats, dim=1) @ torch.nn.functional.normalize(feats, dim=1).T
    top = torch.zeros_like(raw).scatter(1, raw.topk(2, dim=1).indices, raw.topk(2, dim=1).values)
    d = top.sum(1).pow(-0.5)
    assert torch.allclose(s, d[:, None] * top * d[None, :], atol=1e-6)
