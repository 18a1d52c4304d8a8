import numpy as np
import pytest
import torch

from harness.data.regimes import make_task
from harness.data.tiny import tiny_dataset
from harness.protocol.audit import (AuditSample, attack, audit_sample, bootstrap_aucs, difference_auc, privleak,
                                    rank_features)


def test_rank_features_hand_computed_over_candidates_only():
    users = torch.tensor([[1.0, 0.0]])
    items = torch.tensor([[3.0, 0.0], [2.0, 0.0], [1.0, 0.0], [0.0, 0.0]])  # scores 3, 2, 1, 0
    exclude = torch.tensor([[True, False, False, False]]).to_sparse_csr()  # item 0 is a retained training item
    f = rank_features(users, items, torch.tensor([[0, 1], [0, 3]]), exclude)
    # candidates {1, 2, 3} with scores {2, 1, 0}: mean 1, std 1; item 1 is top (p = 1), item 3 bottom (p = 0)
    np.testing.assert_allclose(f, [[2.0, 1.0, 1.0], [0.0, -1.0, 0.0]])


def test_rank_features_in_chunks_of_users_and_pairs_match_one_pass(monkeypatch):
    """Blocks of 2 users and of 3 pairs (a user with more pairs than a block) give the
    one-block figures; percentiles also match the plain per-pair count."""
    gen = torch.Generator().manual_seed(0)
    users, items = torch.randn(5, 4, generator=gen), torch.randn(30, 4, generator=gen)
    exclude = (torch.rand(5, 30, generator=gen) < 0.3).to_sparse_csr()
    pairs = torch.stack([torch.tensor([0] * 9 + [3] * 4 + [1]), torch.randint(30, (14,), generator=gen)], 1)
    whole = rank_features(users, items, pairs, exclude, chunk=512)
    monkeypatch.setattr("harness.protocol.audit.PAIR_CHUNK", 3)
    np.testing.assert_allclose(rank_features(users, items, pairs, exclude, chunk=2), whole)
    dense = exclude.to_dense()
    for (u, i), p in zip(pairs.tolist(), whole[:, 2]):
        scores = users[u] @ items.T
        cand = scores[~dense[u]]
        assert p == pytest.approx(1.0 - float((cand > scores[i]).sum()) / (len(cand) - 1))


@pytest.mark.parametrize("regime", ["interaction", "user", "item"])
def test_sample_is_balanced_held_out_and_matched_to_the_regime(regime):
    dataset = tiny_dataset(n_users=60, n_items=80, per_user=10)
    task = make_task(dataset, regime, "random", 0.2, 0)
    sample = audit_sample(dataset, task, size=1000, seed=0)
    members, nonmembers = sample.pairs[sample.labels == 1].numpy(), sample.pairs[sample.labels == 0].numpy()
    assert len(members) == len(nonmembers) == sample.size > 0
    as_set = lambda a: set(map(tuple, a.tolist()))
    assert as_set(members) <= as_set(task.forget)
    assert as_set(nonmembers) <= as_set(dataset.valid)  # development tasks: validation only, never the test split
    assert not as_set(nonmembers) & as_set(dataset.train)
    reported = audit_sample(dataset, task, size=1000, seed=0, split="test")  # report tasks: pairs no method read
    assert as_set(reported.pairs[reported.labels == 0].numpy()) <= as_set(dataset.test) and reported.split == "test"
    if regime == "item":
        assert np.isin(nonmembers[:, 1], task.items).all()
    else:  # the touched users; in user deletion the deleted users themselves
        assert np.isin(nonmembers[:, 0], task.users).all()
    again = audit_sample(dataset, task, size=1000, seed=0)
    assert torch.equal(again.pairs, sample.pairs)
    small = audit_sample(dataset, task, size=5, seed=0)
    assert small.size <= 5


def test_sample_matches_item_popularity_bin_by_bin():
    dataset = tiny_dataset(n_users=60, n_items=80, per_user=10)
    task = make_task(dataset, "interaction", "core", 0.2, 0)  # D_f skewed to popular items
    sample = audit_sample(dataset, task, size=1000, seed=0)
    popularity = np.bincount(dataset.train[:, 1], minlength=dataset.n_items)
    pop = popularity[sample.pairs[:, 1].numpy()]
    # the same number of members and non-members in every popularity decile
    assert abs(np.median(pop[sample.labels == 1]) - np.median(pop[sample.labels == 0])) <= 0.2 * np.median(pop) + 1


def _planted(direction: float, n: int = 400, seed: int = 0):
    """Features where members are shifted by ``direction`` standard units (0: no signal)."""
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)]
    features = rng.normal(size=(2 * n, 3))
    features[:n] += direction
    return features, AuditSample(torch.zeros(2 * n, 2, dtype=torch.long), labels, seed)


def test_attack_sees_remembered_and_buried_pairs_alike():
    remembered = attack(*_planted(+1.5))
    buried = attack(*_planted(-1.5))  # a method that pushed D_f below every held-out pair
    nothing = attack(*_planted(0.0))
    assert remembered.auc > 0.8 and buried.auc > 0.8  # a one-way attack would give the buried pairs AUC < 0.2
    assert abs(nothing.auc - 0.5) < 0.07


def test_privleak_hand_computed_sign_and_argument_order():
    labels = np.r_[np.ones(2, dtype=np.int64), np.zeros(2, dtype=np.int64)]
    sample = AuditSample(torch.zeros(4, 2, dtype=torch.long), labels, 0)
    from harness.protocol.audit import Audit

    model = Audit(np.zeros((4, 3)), np.array([0.9, 0.4, 0.5, 0.1]), 0.75)  # 3 of 4 member/non-member pairs ordered
    retrain = Audit(np.zeros((4, 3)), np.array([0.5, 0.2, 0.6, 0.1]), 0.5)
    value, low, high = privleak(model, retrain, sample)
    assert value == pytest.approx((0.75 - 0.5) / 0.5)  # +0.5: still remembered
    assert low <= value <= high
    assert privleak(retrain, model, sample)[0] == pytest.approx((0.5 - 0.75) / 0.75)  # swapped: over-unlearned


def test_bootstrap_aucs_centre_on_the_auc():
    features, sample = _planted(1.0)
    audit = attack(features, sample)
    draws = bootstrap_aucs([audit.scores], sample.labels, draws=400, seed=0)[0]
    assert abs(draws.mean() - audit.auc) < 0.01 and draws.std() > 0


def test_difference_attack_reads_the_change():
    features, sample = _planted(0.0)
    original = attack(features, sample)
    same = attack(features.copy(), sample)
    moved = features.copy()
    moved[sample.labels == 1, 2] -= 2.0  # only the members' third feature moved by unlearning
    changed = attack(moved, sample)
    assert abs(difference_auc(original, same, sample) - 0.5) < 0.07
    assert difference_auc(original, changed, sample) > 0.9


def test_weighted_auc_equals_the_auc_of_the_expanded_sample():
    from sklearn.metrics import roc_auc_score

    from harness.protocol.audit import weighted_aucs

    pos, neg = np.array([0.9, 0.5, 0.5, 0.1]), np.array([0.5, 0.3, 0.95])  # ties at 0.5 count half
    w_pos, w_neg = np.array([[2.0, 0.0, 1.0, 1.0]]), np.array([[1.0, 3.0, 0.0]])
    expanded = np.r_[np.repeat(pos, w_pos[0].astype(int)), np.repeat(neg, w_neg[0].astype(int))]
    labels = np.r_[np.ones(int(w_pos.sum())), np.zeros(int(w_neg.sum()))]
    assert weighted_aucs(pos, neg, w_pos, w_neg)[0] == pytest.approx(roc_auc_score(labels, expanded))
    # by hand: 0.9 beats 0.5 and 3 x 0.3 (x2 weight) = 8; 0.5 ties 0.5 (0.5) and beats 3 x 0.3 = 3.5; 0.1: 0
    assert weighted_aucs(pos, neg, w_pos, w_neg)[0] == pytest.approx((8 + 3.5) / (4 * 4))
