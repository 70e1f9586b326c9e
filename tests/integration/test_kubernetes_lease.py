"""The Kubernetes Lease lock against a local server that implements the Lease resource."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from boxoffice_scheduler.election import LeaderElection
from boxoffice_scheduler.kube_lease import KubernetesLeaseLock
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.kube_api import KubeApiServer
from tests.support.processes import wait_until

NAMESPACE = "boxoffice"
NAME = "boxoffice-scheduler"


@pytest.fixture
def server() -> Iterator[KubeApiServer]:
    server = KubeApiServer().start()
    yield server
    server.stop()


def lease_lock(server: KubeApiServer, identity: str, lease: float = 1.0) -> KubernetesLeaseLock:
    api = client.ApiClient(client.Configuration(host=server.url))
    return KubernetesLeaseLock(api, NAMESPACE, NAME, identity, lease, request_timeout=2)


def holder(server: KubeApiServer) -> str | None:
    lease = server.store.lease(NAMESPACE, NAME)
    return lease["spec"].get("holderIdentity") if lease else None


def test_replicas_racing_to_create_the_lease_have_exactly_one_winner(
    server: KubeApiServer,
) -> None:
    locks = [lease_lock(server, f"pod-{i}") for i in range(4)]
    barrier = threading.Barrier(len(locks))
    tokens: dict[str, int | None] = {}

    def race(lock: KubernetesLeaseLock) -> None:
        barrier.wait()
        tokens[lock.identity] = lock.acquire_or_renew()

    threads = [threading.Thread(target=race, args=(lock,)) for lock in locks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [name for name, token in tokens.items() if token is not None]
    assert len(winners) == 1
    assert holder(server) == winners[0]
    # The losers' next attempt sees a live lease and does not take it.
    assert all(lock.acquire_or_renew() is None for lock in locks if lock.identity != winners[0])


def test_a_write_on_a_stale_resource_version_gets_409_and_takes_nothing(
    server: KubeApiServer,
) -> None:
    first, second = lease_lock(server, "pod-a"), lease_lock(server, "pod-b")
    first.acquire_or_renew()
    first.release()  # the lease is free: both may try to take it

    # pod-b reads the free lease; before its PUT lands, pod-a takes the lease again.
    def pod_a_writes_first() -> None:
        server.store.before_replace = None
        first.acquire_or_renew()

    server.store.before_replace = pod_a_writes_first
    with pytest.raises(ApiException) as conflict:
        second.acquire_or_renew()
    assert conflict.value.status == 409
    assert holder(server) == "pod-a"
    assert server.store.conflicts == 1


def test_a_lapsed_lease_is_taken_over_only_after_the_lease_duration(
    server: KubeApiServer,
) -> None:
    first, second = lease_lock(server, "pod-a", lease=1), lease_lock(server, "pod-b", lease=1)
    first_token = first.acquire_or_renew()
    assert first_token is not None
    # pod-a dies without releasing. pod-b first sees the record now, and must wait a lease.
    seen_at = time.monotonic()
    assert second.acquire_or_renew() is None
    second_token = None
    while second_token is None:
        time.sleep(0.1)
        second_token = second.acquire_or_renew()
    assert time.monotonic() - seen_at >= 1.0
    assert second_token > first_token
    lease = server.store.lease(NAMESPACE, NAME)
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "pod-b"
    assert lease["spec"]["leaseTransitions"] == 1


def test_a_released_lease_is_taken_at_once(server: KubeApiServer) -> None:
    first, second = lease_lock(server, "pod-a", lease=30), lease_lock(server, "pod-b", lease=30)
    assert first.acquire_or_renew() is not None
    assert second.acquire_or_renew() is None
    first.release()
    assert second.acquire_or_renew() is not None
    assert holder(server) == "pod-b"


def test_a_leader_cut_off_from_the_api_server_stops_before_its_lease_can_expire(
    server: KubeApiServer,
) -> None:
    lease, renew_deadline, retry = 3.0, 2.0, 0.25
    lost = threading.Event()
    leader = LeaderElection(
        lease_lock(server, "pod-a", lease), lease, renew_deadline, retry, on_lost=lost.set
    ).start()
    try:
        wait_until(lambda: leader.term() is not None, 10, "pod-a to lead")
        server.store.down.set()
        down_at = time.monotonic()
        # Until the deadline it keeps retrying, and still leads.
        time.sleep(renew_deadline / 2)
        assert leader.term() is not None
        wait_until(lost.is_set, renew_deadline + 2, "pod-a to give up")
        gave_up_after = time.monotonic() - down_at
        assert leader.term() is None
        # The lease seen by others was last renewed before `down_at`: it is still valid now,
        # so pod-a stopped while nobody else could have taken over yet.
        assert gave_up_after < lease
    finally:
        leader.stop(release=False)

    server.store.down.clear()
    successor = lease_lock(server, "pod-b", lease)
    observed_at = time.monotonic()
    assert successor.acquire_or_renew() is None, "took a lease that had not lapsed"
    wait_until(lambda: successor.acquire_or_renew() is not None, lease + 3, "pod-b to take over")
    assert time.monotonic() - observed_at >= lease - 0.05
