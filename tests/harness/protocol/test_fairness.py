import math

import numpy as np
import pytest
import torch

from backbones.blocks.csr import pair_mask
from harness.protocol.fairness import active_users, group_figures


def test_active_users_are_the_top_five_percent_by_training_pairs_ties_to_the_lower_id():
    # 40 users: user 7 has 5 pairs, users 3 and 9 have 4 (a tie at the cut), everyone else 1
    pairs = [(u, 0) for u in range(40)] + [(7, i) for i in range(1, 5)] + [(3, i) for i in range(1, 4)] \
        + [(9, i) for i in range(1, 4)]
    active = active_users(np.array(pairs), 40)
    assert active.sum() == 2  # ceil(0.05 * 40)
    assert active.nonzero().squeeze(1).tolist() == [3, 7]  # 9 ties with 3 and loses on its id
    assert active_users(np.array(pairs), 41).sum() == 3  # ceil(2.05)


def test_group_figures_by_hand():
    # 3 users x 4 items; scores rank items 0 > 1 > 2 > 3 for everyone; nothing excluded
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0]] * 3)
    score = lambda rows: scores[rows].clone()  # noqa: E731
    exclude = pair_mask(torch.zeros((0, 2), dtype=torch.long), 3, 4)
    test = torch.tensor([[0, 0], [1, 1], [2, 3]])  # ranks 1, 2 and 4 of 4
    active = torch.tensor([True, False, False])
    out = group_figures(score, exclude, test, active, 4, min_group=1)
    inactive = (1 / math.log2(3) + 1 / math.log2(5)) / 2  # users 1 and 2, one test item each
    assert out["retain_test_ndcg@20_active"] == pytest.approx(1.0)
    assert out["retain_test_ndcg@20_inactive"] == pytest.approx(inactive)
    assert out["fairness_gap@20"] == pytest.approx(1.0 - inactive)  # active minus inactive: positive here
    swapped = group_figures(score, exclude, test, ~active, 4, min_group=1)  # the groups the other way round: the sign flips
    assert swapped["fairness_gap@20"] == pytest.approx(inactive - 1.0)
    assert out["fairness_active_users"] == 1
    empty = group_figures(score, exclude, test[1:], active, 4, min_group=1)
    assert math.isnan(empty["retain_test_ndcg@20_active"]) and math.isnan(empty["fairness_gap@20"])
    assert empty["fairness_active_users"] == 0
    few = group_figures(score, exclude, test, active, 4, min_group=2)  # one active user is too few to judge
    assert math.isnan(few["retain_test_ndcg@20_active"]) and few["retain_test_ndcg@20_inactive"] == pytest.approx(inactive)
