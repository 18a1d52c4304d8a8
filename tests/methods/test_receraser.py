import numpy as np
import pytest
import torch

from backbones.base import Batch, eval_embeddings
from backbones.blocks.graph import UserItemGraph
from harness.data.tiny import tiny_dataset
from harness.protocol.models import build_backbone
from methods.receraser import AggregatedShards, Attention
from methods.sharding import random_partition


@pytest.fixture(scope="module")
def data():
    return tiny_dataset()


def _aggregate(data, k=3):
    part = random_partition(data.train, data.n_users, data.n_items, k, "interaction", seed=0)
    shards = [build_backbone("lightgcn", data, seed=s) for s in range(k)]
    return AggregatedShards(shards, part, dim=64), UserItemGraph(torch.from_numpy(data.train), data.n_users, data.n_items)


def test_attention_by_hand():
    att = Attention(2)  # hidden 1
    with torch.no_grad():
        att.weight.copy_(torch.tensor([[1.0], [0.0]]))
        att.bias.zero_()
        att.h.fill_(1.0)
    embs = torch.tensor([[[1.0, 5.0], [-1.0, 3.0]]])  # one row, two shards
    # logits: relu(1) = 1, relu(-1) = 0; weights softmax(1, 0) = (e/(e+1), 1/(e+1))
    w = torch.tensor([np.e / (np.e + 1), 1 / (np.e + 1)], dtype=torch.float32)
    assert torch.allclose(att(embs), (w.unsqueeze(1) * embs[0]).sum(0, keepdim=True))


def test_the_untrained_aggregate_with_uniform_attention_is_the_shards_mean(data):
    model, graph = _aggregate(data)
    for att in (model.user_attention, model.item_attention):
        with torch.no_grad():
            att.h.zero_()  # equal logits: uniform weights
    users, items = model.shard_embeddings(graph)
    u, i = eval_embeddings(model, graph)
    assert torch.allclose(u, users.mean(1), atol=1e-6) and torch.allclose(i, items.mean(1), atol=1e-6)


def test_only_the_aggregator_learns_and_a_bpr_step_raises_positive_over_negative(data):
    model, graph = _aggregate(data)
    before = {n: p.detach().clone() for n, p in model.ensemble.named_parameters()}
    pos = torch.from_numpy(data.train[:8, 1])
    neg = (pos + 7) % data.n_items
    batch = Batch(graph, torch.from_numpy(data.train[:8, 0]), pos, neg)
    model.eval()  # no dropout: a deterministic direction

    def margin():
        u, i = model(graph)
        return ((u[batch.users] * i[pos]).sum(1) - (u[batch.users] * i[neg]).sum(1)).mean()

    start = margin().item()
    optimiser = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    optimiser.zero_grad()
    model.loss(batch).backward()
    assert all(p.grad is None for p in model.ensemble.parameters())  # the shard models are frozen
    assert model.transform.grad is not None and model.user_attention.h.grad is not None
    optimiser.step()
    assert margin().item() > start  # the keep term raises D pairs above their negatives
    assert all(torch.equal(p, before[n]) for n, p in model.ensemble.named_parameters())
