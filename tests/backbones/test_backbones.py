import pytest
import torch

from backbones import BACKBONES
from backbones.base import Batch
from harness.data.datasets import load_dataset
from harness.core.errors import UserError
from backbones.blocks.graph import UserItemGraph
from harness.protocol.models import build_backbone
from harness.core.seeding import generator, seeded
from harness.protocol.evaluation import evaluate_model
from harness.protocol.training import TrainConfig, train

NAMES = ["lightgcn", "mgcn", "miggt"]
SMALL = {"miggt": {"hidden": 16}}


def _graph(ds, pairs=None):
    return UserItemGraph(torch.from_numpy(ds.train if pairs is None else pairs), ds.n_users, ds.n_items)


def _batch(ds, graph, n=40, seed=0):
    gen = generator(seed)
    idx = torch.randint(len(graph.edges), (n,), generator=gen)
    pairs = graph.edges[idx]
    return Batch(graph, pairs[:, 0], pairs[:, 1], torch.randint(ds.n_items, (n,), generator=gen))


def test_registry_lists_builtins_and_rejects_unknown_names():
    assert set(NAMES) <= set(BACKBONES.names())
    with pytest.raises(UserError, match=r"unknown backbone 'gcn' \(valid: .*lightgcn.*mgcn.*miggt"):
        BACKBONES.get("gcn")


@pytest.mark.parametrize("name", NAMES)
def test_forward_shapes(tiny, name):
    model = build_backbone(name, tiny, 0, SMALL.get(name))
    users, items = model(_graph(tiny))
    assert users.shape == (tiny.n_users, 64) and items.shape == (tiny.n_items, 64)


@pytest.mark.parametrize(
    "name, branches",
    [
        ("lightgcn", ["id"]),
        ("mgcn", ["id", "image", "text", "fusion"]),
        ("miggt", ["id", "image", "text", "fusion"]),
    ],
)
def test_branches_and_units_cover_every_parameter_once(tiny, name, branches):
    model = build_backbone(name, tiny, 0, SMALL.get(name))
    specs = model.parameter_specs()
    params = dict(model.named_parameters())
    assert sorted(s.name for s in specs) == sorted(params)
    assert list(model.branches()) == branches
    for spec in specs:
        if spec.rows == "user":
            assert params[spec.name].shape[0] == tiny.n_users
        elif spec.rows == "item":
            assert params[spec.name].shape[0] == tiny.n_items
        else:
            assert spec.rows is None and spec.produces > 0


@pytest.mark.parametrize("name", NAMES)
def test_one_epoch_lowers_the_loss(tiny, name):
    model = build_backbone(name, tiny, 0, SMALL.get(name))
    graph = _graph(tiny)
    batch = _batch(tiny, graph, n=len(graph.edges))

    def loss():
        model.eval()
        with torch.no_grad(), seeded(5):
            return model.loss(batch).item()

    before = loss()
    config = TrainConfig.for_backbone(type(model), max_epochs=1, batch_size=32, lr=1e-2)
    train(model, graph.edges, torch.from_numpy(tiny.valid), config, seed=0, progress=False)
    assert loss() < before


@pytest.mark.parametrize("name", NAMES)
def test_rebuild_on_a_smaller_graph_without_retraining(tiny, name):
    model = build_backbone(name, tiny, 0, SMALL.get(name)).eval()
    full, retained = _graph(tiny), _graph(tiny, tiny.train[: len(tiny.train) // 2])
    with torch.no_grad(), seeded(1):
        u_full, _ = model(full)
    with torch.no_grad(), seeded(1):
        u_small, _ = model(retained)
    with torch.no_grad(), seeded(1):
        u_again, _ = model(full)
    assert not torch.allclose(u_full, u_small)
    assert torch.equal(u_full, u_again)  # the model keeps no graph state


@pytest.mark.parametrize("name", ["mgcn", "miggt"])
def test_any_number_of_modalities(make_mmrec, name):
    for mods in ({"audio": 6}, {"a": 4, "b": 5, "c": 3}):
        ds = load_dataset(make_mmrec("-".join(mods), modalities=mods))
        model = build_backbone(name, ds, 0, SMALL.get(name))
        users, items = model(_graph(ds))
        assert items.shape == (ds.n_items, 64)
        assert set(mods) < set(model.branches())


@pytest.mark.parametrize("name", ["mgcn", "miggt"])
def test_content_backbones_need_a_modality(make_mmrec, name):
    ds = load_dataset(make_mmrec("none", modalities={}))
    with pytest.raises(UserError, match=f"backbone '{name}' needs at least 1 content modality"):
        build_backbone(name, ds, 0)


def test_unknown_or_mistyped_hyperparameter_is_named(tiny):
    with pytest.raises(UserError, match="unknown hyperparameter 'layerz'"):
        build_backbone("lightgcn", tiny, 0, {"layerz": 3})
    with pytest.raises(UserError, match="hyperparameter 'layers': Input should be a valid integer"):
        build_backbone("lightgcn", tiny, 0, {"layers": "three"})
    with pytest.raises(UserError, match="hyperparameter 'modality_hops.image'"):
        build_backbone("miggt", tiny, 0, {"modality_hops": {"image": "x"}})
    model = build_backbone("miggt", tiny, 0, {"modality_hops": {"image": 3}, "hidden": 8})
    assert model.hops == {"id": 4, "image": 3, "text": 2}


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_identical_metrics(tiny, name):
    def run(seed):
        model = build_backbone(name, tiny, seed, SMALL.get(name))
        config = TrainConfig.for_backbone(type(model), max_epochs=3, batch_size=32)
        result = train(model, torch.from_numpy(tiny.train), torch.from_numpy(tiny.valid), config, seed, progress=False)
        return result.valid, evaluate_model(model, _graph(tiny), torch.from_numpy(tiny.test)), model.state_dict()

    a, b, c = run(0), run(0), run(1)
    assert a[0] == b[0] and a[1] == b[1]
    assert all(torch.equal(a[2][k], b[2][k]) for k in a[2])
    assert any(not torch.equal(a[2][k], c[2][k]) for k in a[2])
