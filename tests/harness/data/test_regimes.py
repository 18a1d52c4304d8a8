import numpy as np
import pytest

from harness.core.errors import UserError
from harness.data.regimes import make_task, task_from_request


def _keys(pairs, n_items):
    return set((pairs[:, 0] * n_items + pairs[:, 1]).tolist())


@pytest.mark.parametrize("regime", ["interaction", "user", "item"])
@pytest.mark.parametrize("selection", ["random", "core", "edge"])
def test_partition_and_determinism(tiny, regime, selection):
    task = make_task(tiny, regime, selection, 0.2, seed=3)
    assert len(task.forget) + len(task.retain) == len(tiny.train)
    assert not _keys(task.forget, tiny.n_items) & _keys(task.retain, tiny.n_items)
    again = make_task(tiny, regime, selection, 0.2, seed=3)
    assert np.array_equal(task.forget, again.forget)
    assert task.retain_graph().edges.shape[0] == len(task.retain)


def test_interaction_ratio(tiny):
    task = make_task(tiny, "interaction", "random", 0.1, seed=0)
    assert len(task.forget) == round(0.1 * len(tiny.train))
    assert len(task.removed_users) == 0


def test_user_regime_deletes_whole_users_by_activity(tiny):
    activity = np.bincount(tiny.train[:, 0], minlength=tiny.n_users)
    core = make_task(tiny, "user", "core", 0.25, seed=0)
    edge = make_task(tiny, "user", "edge", 0.25, seed=0)
    assert len(core.users) == round(0.25 * tiny.n_users)
    assert not set(core.users) & set(core.retain[:, 0].tolist())  # every pair of those users is gone
    assert np.array_equal(core.removed_users, core.users)
    assert activity[core.users].min() >= activity[edge.users].max()


def test_item_regime_by_popularity(tiny):
    pop = np.bincount(tiny.train[:, 1], minlength=tiny.n_items)
    core = make_task(tiny, "item", "core", 0.2, seed=0)
    edge = make_task(tiny, "item", "edge", 0.2, seed=0)
    assert pop[core.items].min() >= pop[edge.items].max()
    assert not set(core.items) & set(core.retain[:, 1].tolist())


def test_interaction_core_takes_popular_items_first(tiny):
    pop = np.bincount(tiny.train[:, 1], minlength=tiny.n_items)
    core = make_task(tiny, "interaction", "core", 0.1, seed=0)
    edge = make_task(tiny, "interaction", "edge", 0.1, seed=0)
    assert pop[core.forget[:, 1]].mean() > pop[edge.forget[:, 1]].mean()


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.2, 1.5])
def test_ratio_outside_open_interval(tiny, ratio):
    with pytest.raises(UserError, match=f"ratio {ratio}: must be strictly between 0 and 1"):
        make_task(tiny, "interaction", "random", ratio)


def test_selection_that_yields_nothing(tiny):
    with pytest.raises(UserError, match="selects nothing"):
        make_task(tiny, "user", "random", 0.001)


def test_unknown_regime_and_selection(tiny):
    with pytest.raises(UserError, match="regime 'session'"):
        make_task(tiny, "session")
    with pytest.raises(UserError, match="selection 'middle'"):
        make_task(tiny, "user", "middle")


def test_request_file(tiny, tmp_path):
    pairs = tiny.train[:3]
    path = tmp_path / "request.csv"
    path.write_text("userID,itemID\n" + "\n".join(f"{u},{i}" for u, i in pairs))
    task = task_from_request(tiny, path)
    assert task.regime == "request" and _keys(task.forget, tiny.n_items) == _keys(pairs, tiny.n_items)


@pytest.mark.parametrize(
    "body, message",
    [
        ("userID,itemID\n999,1\n", "row 2: unknown userID 999"),
        ("userID,itemID\n0,999\n", "row 2: unknown itemID 999"),
        ("user,item\n0,1\n", "expected the columns userID,itemID"),
        ("userID,itemID\n", "the request is empty"),
    ],
)
def test_bad_requests(tiny, tmp_path, body, message):
    path = tmp_path / "r.csv"
    path.write_text(body)
    with pytest.raises(UserError, match=message):
        task_from_request(tiny, path)


def test_request_pair_that_is_not_a_training_interaction(tiny, tmp_path):
    u, i = tiny.test[0]
    path = tmp_path / "r.csv"
    path.write_text(f"userID,itemID\n{tiny.train[0, 0]},{tiny.train[0, 1]}\n{u},{i}\n")
    with pytest.raises(UserError, match=rf"row 3: \({u}, {i}\) is not a training interaction"):
        task_from_request(tiny, path)


@pytest.mark.parametrize("regime", ["interaction", "user", "item"])
def test_a_sequence_of_requests(tiny, regime):
    from harness.data.regimes import make_steps

    steps = make_steps(tiny, regime, "random", 0.1, 3, seed=2)
    first = make_task(tiny, regime, "random", 0.1, 2)
    assert np.array_equal(steps[0][0].forget, first.forget)  # step 1 is the single request of the seed
    key = lambda pairs: set(map(tuple, pairs.tolist()))  # noqa: E731
    deleted = set()
    for t, (request, cumulative) in enumerate(steps, start=1):
        assert request.step == cumulative.step == t
        assert not key(request.forget) & deleted  # a request draws from what the earlier ones left
        assert key(request.earlier) == deleted
        deleted |= key(request.forget)
        assert key(cumulative.forget) == deleted and np.array_equal(request.retain, cumulative.retain)
        assert key(cumulative.retain) == key(tiny.train) - deleted
        if regime == "user":  # gone users stay gone for evaluation and retraining
            assert set(request.removed_users) == set(cumulative.removed_users) == {u for u, _ in deleted}
    units = {"interaction": lambda r: len(r.forget), "user": lambda r: len(r.users), "item": lambda r: len(r.items)}
    sizes = [units[regime](request) for request, _ in steps]
    assert len(set(sizes)) == 1  # each request deletes ratio x the original units
    with pytest.raises(UserError, match="step 3 would delete everything left"):
        make_steps(tiny, regime, "random", 0.45, 3, seed=0)
