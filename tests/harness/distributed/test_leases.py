import threading
import time
import warnings
from types import SimpleNamespace

import pytest

from harness.distributed import leases
from harness.distributed.leases import ClusterLease, LeaseTable, lease_table


def test_a_name_has_one_holder_until_it_is_released_or_lapses():
    table = LeaseTable(term=0.2)
    assert table.acquire("m", "a") and not table.acquire("m", "b") and table.acquire("m", "a")
    assert table.renew("m", "a") and not table.renew("m", "b")
    table.release("m", "b")  # not b's to release
    assert table.holders() == {"m": "a"}
    table.release("m", "a")
    assert table.acquire("m", "b") and table.holders() == {"m": "b"}
    time.sleep(0.25)  # b stopped renewing: its lease lapsed
    assert table.holders() == {} and not table.renew("m", "b") and table.acquire("m", "c")


def test_after_a_restart_only_old_holders_reclaim_names_until_one_term_passed():
    table = LeaseTable(term=0.2)
    table.grace_until = time.monotonic() + 0.2  # as rebuilt after its actor died: empty
    assert table.restarted()
    assert not table.acquire("m", "new")  # a holder from before may still be training it
    assert table.renew("m", "old") and not table.acquire("m", "new")
    assert not table.acquire("free", "new")
    time.sleep(0.25)
    assert table.acquire("free", "new") and not LeaseTable().restarted()


@pytest.mark.usefixtures("ray_local")
def test_cluster_leases_give_one_turn_at_a_time_and_stop_waiting_once_done():
    lease_table(term=5.0)
    lease = ClusterLease(poll=0.05, renew=0.05)
    inside, most, entered, done = [0], [0], [0], threading.Event()
    guard = threading.Lock()

    def trainer():
        with lease.held("model-x", done.is_set):
            with guard:
                inside[0] += 1
                entered[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.3)  # longer than the renewal period
            with guard:
                inside[0] -= 1

    threads = [threading.Thread(target=trainer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert most[0] == 1 and entered[0] == 3 and not any(t.is_alive() for t in threads)  # all three, in turn
    import ray

    table = ray.get_actor(leases.NAME, namespace=leases.NAMESPACE)
    assert ray.get(table.holders.remote()) == {}  # every turn was released
    held = threading.Event()
    with lease.held("model-y", lambda: False):  # someone is training y ...
        def waiter():
            with lease.held("model-y", done.is_set):  # ... and this one waits, until y is stored
                held.set()

        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.3)
        assert not held.is_set()  # polling: y is held and not stored yet
        done.set()
        t.join(timeout=10)
        assert held.is_set()  # stopped waiting while y was still held


@pytest.mark.usefixtures("ray_local")
def test_an_unreachable_table_warns_and_lets_the_model_be_trained():
    import ray

    lease_table()
    ray.kill(ray.get_actor(leases.NAME, namespace=leases.NAMESPACE), no_restart=True)
    time.sleep(0.5)
    lease = ClusterLease(poll=0.05, unreachable=0.3)
    with pytest.warns(RuntimeWarning, match="lease table unreachable"):
        with lease.held("model-z", lambda: False):
            pass
    start = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning and no second wait within the outage
        with lease.held("model-w", lambda: False):
            pass
    assert time.monotonic() - start < 0.2


def test_a_renewal_the_table_refuses_is_warned_about_and_ends_the_renewals(monkeypatch):
    calls = []
    table = SimpleNamespace(renew=SimpleNamespace(remote=lambda name, holder: calls.append(name) or False))
    monkeypatch.setattr(leases.ray, "get", lambda ref, timeout: ref)
    with pytest.warns(RuntimeWarning, match="lease on model-v lapsed"):
        ClusterLease(renew=0.01)._renew(table, "model-v", "me", threading.Event())  # returns: no endless loop
    assert calls == ["model-v"]
