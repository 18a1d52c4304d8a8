import copy

import pytest
import torch

from harness.data.regimes import make_task
from harness.data.tiny import tiny_dataset
from harness.protocol.conformance import check_method
from harness.protocol.models import build_backbone
from methods import METHODS, Budget


@pytest.fixture(scope="module")
def dataset():
    return tiny_dataset(n_users=40, n_items=50)


@pytest.mark.parametrize("regime", ["interaction", "user", "item"])
def test_redraw_conforms(regime):
    check_method(METHODS.get("redraw"), backbone="mgcn", regime=regime)


@pytest.mark.parametrize("regime, table", [("user", "user_embedding"), ("item", "item_embedding")])
def test_only_the_deleted_rows_change(dataset, regime, table):
    model = build_backbone("mgcn", dataset, 0)
    before = copy.deepcopy(model)
    task = make_task(dataset, regime, "random", 0.2, 0)
    method = METHODS.get("redraw")()
    after = method.unlearn(model, task, Budget(seed=3))
    rows = torch.from_numpy(task.users if regime == "user" else task.items)
    moved = (getattr(after, table) != getattr(before, table)).any(1)
    expected = torch.zeros_like(moved)
    expected[rows] = True
    assert torch.equal(moved, expected)
    for name, p in after.named_parameters():
        if name != table:
            assert torch.equal(p, dict(before.named_parameters())[name]), name
    assert method.summary() == {"redrawn_rows": len(rows), "tables": [table]}
    again = METHODS.get("redraw")().unlearn(copy.deepcopy(before), task, Budget(seed=3))
    assert torch.equal(getattr(again, table), getattr(after, table))  # seeded by the job's seed


@pytest.mark.parametrize("backbone, regime", [("mgcn", "interaction"), ("miggt", "item")])
def test_nothing_to_redraw_is_graph_edit_and_says_so(dataset, backbone, regime):
    model = build_backbone(backbone, dataset, 0)
    before = copy.deepcopy(model)
    method = METHODS.get("redraw")()
    after = method.unlearn(model, make_task(dataset, regime, "random", 0.2, 0), Budget())
    assert all(torch.equal(p, q) for p, q in zip(after.parameters(), before.parameters()))
    assert method.summary()["redrawn_rows"] == 0 and "graph_edit's model" in method.summary()["note"]
