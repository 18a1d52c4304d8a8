import numpy as np
import pytest

from reports.pareto import pareto_mask


def test_a_dominated_point_is_dropped():
    values = np.array([[0.10, 0.5], [0.12, 0.4], [0.11, 0.45]])  # (retain up, forget down)
    assert pareto_mask(values, [True, False]).tolist() == [False, True, False]


def test_trade_offs_and_ties_are_kept():
    values = np.array([[0.10, 0.1], [0.20, 0.3], [0.20, 0.3], [0.15, 0.2], [0.05, 0.2]])
    assert pareto_mask(values, [True, False]).tolist() == [True, True, True, True, False]


def test_single_point_and_nan():
    assert pareto_mask(np.array([[1.0, 2.0]]), [True, True]).tolist() == [True]
    values = np.array([[np.nan, 0.0], [0.1, 0.5]])
    assert pareto_mask(values, [True, False]).tolist() == [False, True]


def test_shape_is_checked():
    with pytest.raises(ValueError, match=r"values must be \[n, 2\]"):
        pareto_mask(np.zeros((3, 3)), [True, False])


def test_hypervolume_by_hand():
    from reports.pareto import hypervolume_2d

    # (NDCG, forget) with gains over (0, 1) of (0.3, 0.7), (0.2, 0.8), (0.1, 0.9): a staircase
    staircase = np.array([[0.3, 0.3], [0.2, 0.2], [0.1, 0.1]])
    assert hypervolume_2d(staircase) == pytest.approx(0.3 * 0.7 + 0.2 * 0.1 + 0.1 * 0.1)
    # a dominated point and a duplicate add nothing
    more = np.vstack([staircase, [[0.15, 0.35], [0.2, 0.2]]])
    assert hypervolume_2d(more) == pytest.approx(hypervolume_2d(staircase))
    # a single point: its rectangle with the reference
    assert hypervolume_2d(np.array([[0.12, 0.4]])) == pytest.approx(0.12 * 0.6)
    # points no better than the reference, and no points
    assert hypervolume_2d(np.array([[0.0, 0.5], [0.1, 1.0]])) == 0.0
    assert hypervolume_2d(np.zeros((0, 2))) == 0.0
