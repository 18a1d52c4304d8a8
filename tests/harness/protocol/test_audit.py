import pytest
import torch

from harness.protocol.audit import AuditSample, auc, membership_auc


def test_auc_hand_computed_with_ties():
    assert auc(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0])) == 1.0
    assert auc(torch.tensor([1.0]), torch.tensor([2.0])) == 0.0
    # pos {1, 3} vs neg {2, 3}: pairs (1,2)=0 (1,3)=0 (3,2)=1 (3,3)=0.5 -> 1.5 / 4
    assert auc(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 3.0])) == pytest.approx(0.375)


def _planted(memorise_targets: bool):
    """Embeddings where members score high; targets do too only if memorised."""
    gen = torch.Generator().manual_seed(0)
    n_users, n_items, d = 60, 80, 16
    users = torch.randn(n_users, d, generator=gen)
    items = torch.randn(n_items, d, generator=gen) * 0.1

    def pairs(n):
        return torch.stack([torch.randint(n_users, (n,), generator=gen), torch.randint(n_items, (n,), generator=gen)], 1)

    members, nonmembers, targets, fresh = pairs(300), pairs(300), pairs(200), pairs(200)
    boosted = torch.cat([members, targets]) if memorise_targets else members
    for u, i in boosted.tolist():  # plant membership: item i points towards user u
        items[i] += 0.3 * users[u] / users[u].norm()
    return users, items, AuditSample(members, nonmembers, targets, fresh)


def test_audit_flags_a_memorised_forget_set_and_not_a_fresh_one():
    memorised = membership_auc(*_planted(True))
    never_seen = membership_auc(*_planted(False))
    assert memorised > 0.75
    assert abs(never_seen - 0.5) < 0.12
