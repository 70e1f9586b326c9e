"""What the chart promises a platform team, asserted on the rendered objects."""

from __future__ import annotations

import pytest

from tests.helm.chart import (
    CONNECTIONS,
    FULLNAME,
    VALUE_SETS,
    Manifest,
    env_of,
    merge,
    name,
    pod_specs,
    render,
)

WORKERS = {"notifier-email": "notifier.email", "notifier-sms": "notifier.sms", "reaper": "reaper"}
COMPONENTS = ["booking", "relay", *WORKERS, "scheduler"]


def container(rendered_deployment: Manifest) -> Manifest:
    containers = rendered_deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: Manifest = containers[0]
    return result


def test_every_component_has_its_own_deployment_and_the_defaults_match_the_design() -> None:
    rendered = render()
    assert rendered.names("Deployment") == {name(c) for c in COMPONENTS}
    replicas = {c: rendered.get("Deployment", name(c))["spec"]["replicas"] for c in COMPONENTS}
    assert replicas["scheduler"] == 2
    assert replicas["booking"] == 2


def test_scaling_one_component_leaves_the_others_unchanged() -> None:
    before = render(CONNECTIONS)
    after = render(merge(CONNECTIONS, {"notifier": {"email": {"replicas": 7}}}))
    email = name("notifier-email")
    assert after.get("Deployment", email)["spec"]["replicas"] == 7
    assert len(before.objects) == len(after.objects)
    changed = [
        (b["kind"], b["metadata"]["name"])
        for b, a in zip(before.objects, after.objects, strict=True)
        if b != a
    ]
    assert changed == [("Deployment", email)]


@pytest.mark.parametrize("component", COMPONENTS)
def test_disabling_a_component_removes_only_its_objects(component: str) -> None:
    path = component.split("-")
    override: dict[str, object] = {"enabled": False}
    for key in reversed(path):
        override = {key: override}
    rendered = render(merge(CONNECTIONS, override))
    assert not any(
        o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
        for o in rendered.objects
    )
    assert rendered.names("Deployment") == {name(c) for c in COMPONENTS if c != component}


def test_api_binds_all_interfaces_and_probes_readiness_and_liveness() -> None:
    api = render().get("Deployment", name("booking"))
    c = container(api)
    assert c["command"] == ["boxoffice-api"]
    env = env_of(c)
    assert env["BOXOFFICE_API_HOST"]["value"] == "0.0.0.0"
    assert env["BOXOFFICE_API_PORT"]["value"] == "8000"
    assert c["ports"][0]["containerPort"] == 8000
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    service = render().get("Service", name("booking"))
    assert service["spec"]["ports"][0]["targetPort"] == "http"


@pytest.mark.parametrize(("component", "queue"), sorted(WORKERS.items()))
def test_worker_liveness_checks_the_worker_still_consumes(component: str, queue: str) -> None:
    deployment = render().get("Deployment", name(component))
    c = container(deployment)
    assert c["livenessProbe"]["exec"]["command"][:3] == [
        "python",
        "-m",
        "boxoffice_messaging.heartbeat",
    ]
    heartbeat = env_of(c)["BOXOFFICE_WORKER_LIVENESS_FILE"]["value"]
    assert any(heartbeat.startswith(m["mountPath"] + "/") for m in c["volumeMounts"])
    assert c["livenessProbe"]["exec"]["command"][3:] == ["--max-age", "60"]


@pytest.mark.parametrize(("component", "queue"), sorted(WORKERS.items()))
def test_each_queue_has_exactly_one_worker_pool_and_shuts_down_warm(
    component: str, queue: str
) -> None:
    rendered = render()
    c = container(rendered.get("Deployment", name(component)))
    # Exec form, no shell in between: SIGTERM reaches Celery, which finishes running tasks.
    assert c["command"][0] in ("boxoffice-notifier", "boxoffice-reaper")
    if component.startswith("notifier"):
        assert c["command"] == ["boxoffice-notifier", "-Q", queue]
    consumers = [
        d["metadata"]["name"]
        for d in rendered.of_kind("Deployment")
        if d["metadata"]["labels"].get("boxoffice.io/queue") == queue
    ]
    assert consumers == [name(component)]
    grace = rendered.get("Deployment", name(component))["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    assert grace >= 60  # the longest task (an SMTP send times out at 10 s) fits many times


def test_relay_and_workers_serve_metrics_on_the_metrics_port() -> None:
    rendered = render()
    config = rendered.get("ConfigMap", FULLNAME)["data"]
    assert config["BOXOFFICE_METRICS_PORT"] == "9100"
    for component in ["relay", *WORKERS, "scheduler"]:
        ports = container(rendered.get("Deployment", name(component)))["ports"]
        assert ports == [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}]


def test_scheduler_has_its_lease_rbac_and_identity() -> None:
    rendered = render()
    scheduler = name("scheduler")
    role = rendered.get("Role", scheduler)
    assert role["metadata"]["namespace"] == "boxoffice"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [scheduler],  # its own Lease, no other
            "verbs": ["get", "update"],
        },
    ]
    binding = rendered.get("RoleBinding", scheduler)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": scheduler,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": scheduler, "namespace": "boxoffice"}
    ]
    assert rendered.get("ServiceAccount", scheduler)
    pod = rendered.get("Deployment", scheduler)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == scheduler
    assert pod["automountServiceAccountToken"] is True
    env = env_of(pod["containers"][0])
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["BOXOFFICE_SCHEDULER_LEASE_NAME"]["value"] == scheduler
    # Nothing else in the chart may touch the Kubernetes API.
    assert rendered.names("Role") == {scheduler}
    assert not rendered.of_kind("ClusterRole")


def test_only_the_scheduler_mounts_a_service_account_token() -> None:
    for rendered in (render(), render(VALUE_SETS["in-chart-datastores"])):
        for obj, pod in pod_specs(rendered):
            expected = obj["metadata"]["name"] == name("scheduler")
            assert pod["automountServiceAccountToken"] is expected, obj["metadata"]["name"]
        for account in rendered.of_kind("ServiceAccount"):
            assert account["automountServiceAccountToken"] is False


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_pod_runs_restricted(value_set: str) -> None:
    for obj, pod in pod_specs(render(VALUE_SETS[value_set])):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, obj["metadata"]["name"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["runAsNonRoot"] is True
            assert set(c["resources"]) >= {"limits", "requests"}


@pytest.mark.parametrize("component", COMPONENTS)
def test_every_component_has_a_pod_disruption_budget_that_selects_it(component: str) -> None:
    rendered = render(merge(CONNECTIONS, {"relay": {"podDisruptionBudget": {"enabled": True}}}))
    pdb = rendered.get("PodDisruptionBudget", name(component))
    labels = rendered.get("Deployment", name(component))["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_changing_the_config_rolls_every_pod() -> None:
    before = render(CONNECTIONS)
    after = render(merge(CONNECTIONS, {"config": {"logLevel": "DEBUG"}}))
    for component in COMPONENTS:
        a = before.get("Deployment", name(component))["spec"]["template"]["metadata"]
        b = after.get("Deployment", name(component))["spec"]["template"]["metadata"]
        assert a["annotations"]["checksum/config"] != b["annotations"]["checksum/config"]
        assert a["annotations"]["checksum/secret"] == b["annotations"]["checksum/secret"]
    rotated = render(merge(CONNECTIONS, {"smtp": {"password": "rotated"}}))
    annotations = rotated.get("Deployment", name("notifier-email"))["spec"]["template"]["metadata"]
    original = before.get("Deployment", name("notifier-email"))["spec"]["template"]["metadata"]
    assert (
        annotations["annotations"]["checksum/secret"] != original["annotations"]["checksum/secret"]
    )


def test_api_drains_before_it_stops() -> None:
    pod = render().get("Deployment", name("booking"))["spec"]["template"]["spec"]
    c = container(render().get("Deployment", name("booking")))
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    # The pause plus uvicorn's 20 s graceful shutdown fit in the grace period.
    assert pod["terminationGracePeriodSeconds"] >= 5 + 20
    off = render({"booking": {"preStopSleepSeconds": 0}}).get("Deployment", name("booking"))
    assert "lifecycle" not in container(off)
