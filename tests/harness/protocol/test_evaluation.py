import math

import pytest
import torch

from backbones.blocks.csr import dense_rows
from harness.protocol.evaluation import rank_metrics


def _csr(mask):
    return mask.to_sparse_csr()


def dcg(positions):
    return sum(1 / math.log2(p + 1) for p in positions)


def test_hand_computed_two_users():
    # user 0: ranking 3 > 1 > 0 > 2 (item 4 excluded despite top score); truth {1, 2}
    # user 1: ranking 0 > 1 > 2 > 3 > 4; truth {4} (only in the bottom)
    scores = torch.tensor([[0.5, 0.8, 0.1, 0.9, 5.0], [0.9, 0.8, 0.7, 0.6, 0.5]])
    exclude = torch.tensor([[0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    truth = torch.tensor([[0, 1, 1, 0, 0], [0, 0, 0, 0, 1]], dtype=torch.bool)
    m = rank_metrics(scores, exclude, truth, ks=(2, 4))
    # user 0 top2 = [3, 1]: 1 hit; top4 = [3,1,0,2]: 2 hits at ranks 2 and 4
    # user 1 top2 = [0, 1]; top4 = [0,1,2,3]: no hit
    assert m["recall@2"] == pytest.approx((1 / 2 + 0) / 2)
    assert m["precision@2"] == pytest.approx((1 / 2 + 0) / 2)
    assert m["hit@2"] == pytest.approx(0.5)
    assert m["ndcg@2"] == pytest.approx((dcg([2]) / dcg([1, 2]) + 0) / 2)
    assert m["recall@4"] == pytest.approx((1.0 + 0) / 2)
    assert m["precision@4"] == pytest.approx((2 / 4 + 0) / 2)
    assert m["ndcg@4"] == pytest.approx((dcg([2, 4]) / dcg([1, 2]) + 0) / 2)


def test_fewer_truth_items_than_k_uses_ideal_over_truth_count():
    scores = torch.tensor([[0.1, 0.9, 0.8, 0.2]])
    truth = torch.tensor([[0, 0, 1, 0]], dtype=torch.bool)
    m = rank_metrics(scores, torch.zeros_like(truth), truth, ks=(3,))
    assert m["recall@3"] == 1.0
    assert m["precision@3"] == pytest.approx(1 / 3)
    assert m["ndcg@3"] == pytest.approx(dcg([2]) / dcg([1]))


def test_ties_inside_top_k_do_not_matter():
    # items 0 and 1 tie for the top; both are truth: any order gives the same figures
    scores = torch.tensor([[1.0, 1.0, 0.5, 0.2]])
    truth = torch.tensor([[1, 1, 0, 0]], dtype=torch.bool)
    m = rank_metrics(scores, torch.zeros_like(truth), truth, ks=(2,))
    assert m["ndcg@2"] == pytest.approx(1.0) and m["recall@2"] == 1.0


def test_excluded_items_are_never_recommended_even_when_fewer_than_k_remain():
    scores = torch.tensor([[9.0, 8.0, 1.0]])
    exclude = torch.tensor([[1, 1, 0]], dtype=torch.bool)
    truth = torch.tensor([[1, 0, 1]], dtype=torch.bool)  # item 0 is truth but excluded
    m = rank_metrics(scores, exclude, truth, ks=(3,))
    assert m["recall@3"] == pytest.approx(0.5)  # only item 2 can be found
    assert m["precision@3"] == pytest.approx(1 / 3)


def test_users_without_truth_are_skipped():
    scores = torch.rand(3, 6)
    truth = torch.zeros(3, 6, dtype=torch.bool)
    truth[1, scores[1].argmax()] = True
    m = rank_metrics(scores, torch.zeros_like(truth), truth, ks=(1,))
    assert m["hit@1"] == 1.0 and m["recall@1"] == 1.0


def test_sparse_csr_equals_dense_and_batching_is_invisible():
    gen = torch.Generator().manual_seed(0)
    scores = torch.rand(50, 40, generator=gen)
    exclude = torch.rand(50, 40, generator=gen) < 0.2
    truth = (torch.rand(50, 40, generator=gen) < 0.1) & ~exclude
    dense = rank_metrics(scores, exclude, truth)
    sparse = rank_metrics(scores, _csr(exclude), _csr(truth), batch_size=7)
    assert dense.keys() == sparse.keys() == {
        f"{m}@{k}" for m in ("recall", "ndcg", "precision", "hit") for k in (10, 20)
    }
    for key in dense:
        assert dense[key] == pytest.approx(sparse[key], abs=1e-6)


def test_dense_rows_of_csr():
    mask = torch.rand(9, 7) < 0.3
    rows = torch.tensor([4, 0, 8, 4])
    assert torch.equal(dense_rows(_csr(mask), rows), mask[rows])


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes differ"):
        rank_metrics(torch.rand(2, 3), torch.zeros(2, 4, dtype=torch.bool), torch.zeros(2, 3, dtype=torch.bool))


def test_broadcast_scores_are_not_modified_and_rank_the_same():
    from harness.protocol.evaluation import metrics_from_scores

    gen = torch.Generator().manual_seed(1)
    popularity = torch.rand(30, generator=gen)
    exclude = torch.rand(12, 30, generator=gen) < 0.3
    truth = (torch.rand(12, 30, generator=gen) < 0.2) & ~exclude
    before = popularity.clone()
    shared = metrics_from_scores(lambda rows: popularity.expand(len(rows), -1), _csr(exclude), _csr(truth))
    assert torch.equal(popularity, before)
    dense = rank_metrics(popularity.expand(12, -1).clone(), exclude, truth)
    assert shared == pytest.approx(dense)
