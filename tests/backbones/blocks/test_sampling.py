import torch

from backbones.blocks.sampling import NegativeSampler
from harness.core.seeding import generator


def test_negatives_are_never_training_items_and_are_seeded():
    gen = generator(0)
    edges = torch.stack([torch.randint(0, 20, (300,), generator=gen), torch.randint(0, 15, (300,), generator=gen)], 1)
    sampler = NegativeSampler(edges, 15)
    users = torch.randint(0, 20, (5000,), generator=gen)
    neg = sampler.sample(users, generator(1))
    positives = set(map(tuple, edges.tolist()))
    assert not any((u, j) in positives for u, j in zip(users.tolist(), neg.tolist()))
    assert torch.equal(neg, sampler.sample(users, generator(1)))
    assert not torch.equal(neg, sampler.sample(users, generator(2)))


def test_sampler_spreads_over_all_free_items():
    edges = torch.tensor([[0, 0], [0, 1]])
    neg = NegativeSampler(edges, 4).sample(torch.zeros(4000, dtype=torch.long), generator(0))
    counts = torch.bincount(neg, minlength=4)
    assert counts[:2].sum() == 0 and (counts[2:] > 1800).all()


def test_a_user_with_every_item_is_an_error_not_a_hang():
    import pytest

    edges = torch.tensor([[0, 0], [0, 1], [1, 0]])
    with pytest.raises(ValueError, match="user 0 interacted with every item"):
        NegativeSampler(edges, 2)
