import pytest
import torch

from methods.newton import Subspace, conjugate_gradient, gradient, hessian_vector_product, lissa


def spd(n=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    return q @ torch.diag(torch.linspace(0.5, 5.0, n, dtype=torch.float64)) @ q.T


def test_conjugate_gradient_solves_the_damped_system():
    a, b = spd(), torch.arange(12, dtype=torch.float64)
    solved = conjugate_gradient(lambda v: a @ v, b, damping=0.3, max_products=40, tol=1e-12)
    exact = torch.linalg.solve(a + 0.3 * torch.eye(12, dtype=torch.float64), b)
    assert torch.allclose(solved.x, exact, rtol=1e-9, atol=1e-12)
    assert solved.products <= 13 and solved.residual < 1e-10  # at most n steps (+ roundoff)
    capped = conjugate_gradient(lambda v: a @ v, b, damping=0.3, max_products=2)
    assert capped.products == 2 and capped.residual > 1e-3  # the cap holds and says how far it got


def test_lissa_reaches_the_same_solution_and_refuses_a_too_small_scale():
    a, b = spd(), torch.ones(12, dtype=torch.float64)
    exact = torch.linalg.solve(a + 0.3 * torch.eye(12, dtype=torch.float64), b)
    solved = lissa(lambda v: a @ v, b, damping=0.3, scale=4.0, max_products=400)
    assert torch.allclose(solved.x, exact, rtol=1e-8) and solved.residual < 1e-8
    with pytest.raises(FloatingPointError, match="scale 1.0"):
        lissa(lambda v: a @ v, b, damping=0.3, scale=1.0, max_products=2000)  # eigenvalues up to 5.3 > 2 * 1


def test_subspace_round_trip_moves_only_its_rows():
    table, shared = torch.nn.Parameter(torch.zeros(5, 3)), torch.nn.Parameter(torch.zeros(2))
    space = Subspace([table, shared], [torch.tensor([1, 3]), None])
    assert space.size == 8
    x = torch.arange(1.0, 9.0)
    assert torch.equal(space.flatten(space.unflatten(x)), x)
    space.add_(x)
    assert table[[0, 2, 4]].abs().sum() == 0 and table[1].tolist() == [1, 2, 3] and shared.tolist() == [7, 8]


def test_the_solver_matches_an_explicit_inverse_on_a_small_model():
    """(H + lambda I)^{-1} g on a tiny LightGCN, restricted to 3 user rows and 2 item rows
    (40 entries): H formed explicitly by torch.autograd.functional.hessian, independently
    of the products and the subspace maps; CG to 1e-5 relative."""
    from backbones.base import Batch
    from backbones.blocks.graph import UserItemGraph
    from harness.data.tiny import tiny_dataset
    from harness.protocol.models import build_backbone

    dataset = tiny_dataset()
    model = build_backbone("lightgcn", dataset, 0, {"dim": 8})
    graph = UserItemGraph(torch.from_numpy(dataset.train), dataset.n_users, dataset.n_items)
    pairs = torch.from_numpy(dataset.train[:60])
    batch = Batch(graph, pairs[:, 0], pairs[:, 1], torch.randint(dataset.n_items, (60,), generator=torch.Generator().manual_seed(0)))
    users, items = (p for n, p in model.named_parameters() if n in ("user_embedding", "item_embedding"))
    user_rows, item_rows = torch.tensor([0, 4, 7]), torch.tensor([2, 5])
    space = Subspace([users, items], [user_rows, item_rows])
    assert space.size == 40

    def loss_of(x):  # the loss with the subspace shifted by x, through the model's own forward
        du, di = space.unflatten(x)
        params = {"user_embedding": users.detach() + du, "item_embedding": items.detach() + di}
        out_users, out_items = torch.func.functional_call(model, params, (graph,))
        return model.ranking_loss(out_users, out_items, batch)

    zero = torch.zeros(space.size)
    h = torch.autograd.functional.hessian(loss_of, zero)
    b = torch.autograd.functional.jacobian(loss_of, zero)
    damping = 0.05
    exact = torch.linalg.solve(h.double() + damping * torch.eye(40, dtype=torch.float64), b.double())

    hvp = hessian_vector_product(lambda: model.ranking_loss(*model(graph), batch), space)
    assert torch.allclose(gradient(model.ranking_loss(*model(graph), batch), space), b, rtol=1e-5, atol=1e-7)
    solved = conjugate_gradient(hvp, b, damping, max_products=200, tol=1e-9)
    assert float((solved.x.double() - exact).norm() / exact.norm()) < 1e-5
