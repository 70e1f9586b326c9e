"""A Kubernetes `Lease` (coordination.k8s.io/v1) as the leader lock, like client-go's LeaseLock.

Every write is a full replace carrying the `resourceVersion` we read, so two replicas racing
for the lease cannot both win: the API server answers the loser with 409 Conflict.
Whether another holder's lease has lapsed is judged by *our* clock: the record must stay
unchanged for `leaseDurationSeconds` since we first saw it, so clock skew between pods
cannot make us take over early.

The fencing token is the lease's `acquireTime` in milliseconds: it is set by each new holder
and grows with every takeover (a takeover only happens a whole lease duration later).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from boxoffice_scheduler.cluster import in_cluster
from boxoffice_scheduler.election import LeadershipTaken
from boxoffice_scheduler.state import LockGuard

log = logging.getLogger(__name__)


def api_client() -> client.ApiClient:
    """The pod's service account in a cluster, else the kubeconfig (KUBECONFIG or ~/.kube)."""
    if in_cluster():
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


class KubernetesLeaseLock:
    """The leader lock as a `Lease` object, read and replaced optimistically."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float,
        request_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.leases = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_seconds = max(1, math.ceil(lease_duration))
        self.request_timeout = request_timeout
        self.clock = clock
        self._observed: tuple[object, ...] | None = None
        self._observed_at = 0.0
        self._token: int | None = None

    def _observe(self, spec: client.V1LeaseSpec) -> None:
        record = (spec.holder_identity, spec.renew_time, spec.acquire_time, spec.lease_transitions)
        if record != self._observed:
            self._observed = record
            self._observed_at = self.clock()

    def _spec(self, acquire_time: datetime, transitions: int) -> client.V1LeaseSpec:
        return client.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=self.lease_seconds,
            acquire_time=acquire_time,
            renew_time=datetime.now(UTC),
            lease_transitions=transitions,
        )

    def acquire_or_renew(self) -> int | None:
        try:
            lease = self.leases.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self.request_timeout
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            return self._create()
        spec = lease.spec or client.V1LeaseSpec()
        self._observe(spec)
        holder = spec.holder_identity or ""
        transitions = spec.lease_transitions or 0
        if holder == self.identity and spec.acquire_time is not None:
            acquire_time = spec.acquire_time
        else:
            duration = spec.lease_duration_seconds or self.lease_seconds
            if holder and self.clock() < self._observed_at + duration:
                if self._token is not None:
                    self._token = None
                    raise LeadershipTaken(f"the lease is held by {holder}")
                return None
            acquire_time = datetime.now(UTC)
            transitions += 1
        metadata = lease.metadata or client.V1ObjectMeta()
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(
                name=self.name,
                namespace=self.namespace,
                resource_version=metadata.resource_version,
            ),
            spec=self._spec(acquire_time, transitions),
        )
        # A 409 here means someone wrote in between: not ours this round, raised so a leader
        # keeps retrying until its renew deadline instead of giving up on one lost race.
        updated = self.leases.replace_namespaced_lease(
            self.name, self.namespace, body, _request_timeout=self.request_timeout
        )
        return self._took(updated)

    def _create(self) -> int | None:
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
            spec=self._spec(datetime.now(UTC), 0),
        )
        try:
            created = self.leases.create_namespaced_lease(
                self.namespace, body, _request_timeout=self.request_timeout
            )
        except ApiException as exc:
            if exc.status == 409:  # another replica created it first
                return None
            raise
        return self._took(created)

    def _took(self, lease: client.V1Lease) -> int:
        assert lease.spec is not None
        assert lease.spec.acquire_time is not None
        self._observe(lease.spec)
        self._token = round(lease.spec.acquire_time.timestamp() * 1000)
        return self._token

    def release(self) -> None:
        """Empty the holder so the next replica need not wait for the lease to lapse."""
        lease = self.leases.read_namespaced_lease(
            self.name, self.namespace, _request_timeout=self.request_timeout
        )
        if lease.spec is None or lease.spec.holder_identity != self.identity:
            return
        lease.spec.holder_identity = None
        lease.spec.lease_duration_seconds = 1
        lease.spec.renew_time = datetime.now(UTC)
        self.leases.replace_namespaced_lease(
            self.name, self.namespace, lease, _request_timeout=self.request_timeout
        )
        self._token = None

    def guard(self) -> LockGuard | None:
        # The lease lives in the API server, not in Redis: the fencing token does the guarding.
        return None
