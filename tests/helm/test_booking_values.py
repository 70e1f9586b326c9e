"""The booking API's values: hold and booking rules, rate limit, idempotency, payment providers."""

from __future__ import annotations

import base64
from typing import Any

import helm_python as helm
import pytest
from boxoffice_payments.registry import provider_names
from boxoffice_settings import Settings

from tests.helm.chart import (
    CHART,
    CONNECTIONS,
    FULLNAME,
    VALUE_SETS,
    Manifest,
    Rendered,
    env_of,
    merge,
    name,
    pod_specs,
    render,
    render_chart,
    settings_from_env,
)
from tests.helm.netpol import OUTSIDE, can_connect, pod_labels

KEY_ID = "rzp_live_0123456789abcd"
# Every component but the two that talk to the payment provider.
NO_PAYMENTS = ("relay", "notifier-email", "notifier-sms", "scheduler")
RAZORPAY_ENV = (
    "BOXOFFICE_RAZORPAY_KEY_ID",
    "BOXOFFICE_RAZORPAY_KEY_SECRET",
    "BOXOFFICE_RAZORPAY_WEBHOOK_SECRET",
)


def container_env(rendered: Rendered, component: str) -> dict[str, Manifest]:
    deployment = rendered.get("Deployment", name(component))
    return env_of(deployment["spec"]["template"]["spec"]["containers"][0])


def config(rendered: Rendered) -> dict[str, str]:
    data: dict[str, str] = rendered.get("ConfigMap", FULLNAME)["data"]
    return data


def secret_values(rendered: Rendered, env: dict[str, Manifest]) -> dict[str, str]:
    """Resolve the env entries that point at the chart's own Secret, as the kubelet would."""
    secret = rendered.find("Secret", f"{FULLNAME}-secrets")
    resolved = {}
    for key, entry in env.items():
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref and secret is not None and ref["name"] == secret["metadata"]["name"]:
            resolved[key] = base64.b64decode(secret["data"][ref["key"]]).decode()
    return resolved


def settings_from(rendered: Rendered, component: str) -> Settings:
    """The Settings a component's process builds from its ConfigMap, env and the chart's Secret."""
    env = dict(config(rendered))
    container = container_env(rendered, component)
    env.update({k: e["value"] for k, e in container.items() if "value" in e})
    env.update(secret_values(rendered, container))
    return settings_from_env(env)


def inline_razorpay(**extra: Any) -> dict[str, Any]:
    razorpay = {"keyId": KEY_ID, "keySecret": "key-secret", "webhookSecret": "hook-secret"}
    return merge(CONNECTIONS, {"payments": {"razorpay": {**razorpay, **extra}}})


def test_every_name_the_chart_sets_with_payments_on_is_a_setting() -> None:
    """Names are checked with the secrets and provider settings rendered (all-features has them)."""
    known = {f"BOXOFFICE_{field.upper()}" for field in Settings.model_fields}
    for values in (VALUE_SETS["all-features"], inline_razorpay()):
        rendered = render(values)
        names = set(config(rendered))
        for _, pod in pod_specs(rendered):
            for c in pod["containers"]:
                names |= set(env_of(c))
        assert set(RAZORPAY_ENV) <= names
        assert {n for n in names if n.startswith("BOXOFFICE_")} - known == set()


def test_booking_rules_reach_the_api_as_settings() -> None:
    values = merge(
        CONNECTIONS,
        {
            "config": {
                "holdTtlSeconds": 300,
                "maxSeatsPerHold": 6,
                "cancelCutoffMinutes": 0,
                "seatCacheTtlSeconds": 30,
                "idempotencyTtlSeconds": 7200,
                "rateLimit": {"requests": 0, "windowSeconds": 10},
            }
        },
    )
    settings = settings_from(render(values), "booking")
    assert settings.hold_ttl_seconds == 300
    assert settings.max_seats_per_hold == 6
    assert settings.cancel_cutoff_minutes == 0
    assert settings.seat_cache_ttl_seconds == 30
    assert settings.idempotency_ttl_seconds == 7200
    assert settings.rate_limit_requests == 0
    assert settings.rate_limit_window_seconds == 10


def test_the_chart_defaults_are_the_settings_defaults() -> None:
    """values.yaml and settings.py must not drift apart on what an install gets by default."""
    settings = settings_from(render(CONNECTIONS), "booking")
    defaults = Settings.model_fields
    for field in (
        "hold_ttl_seconds",
        "max_seats_per_hold",
        "cancel_cutoff_minutes",
        "seat_cache_ttl_seconds",
        "idempotency_ttl_seconds",
        "rate_limit_requests",
        "rate_limit_window_seconds",
        "test_payments_enabled",
        "razorpay_base_url",
        "payment_timeout_seconds",
    ):
        assert getattr(settings, field) == defaults[field].default, field


def test_the_reapers_payment_checks_are_timed_by_the_values() -> None:
    values = merge(
        CONNECTIONS,
        {"config": {"reaperPaymentRecheckSeconds": 2.5, "reaperPaymentGraceSeconds": 0}},
    )
    settings = settings_from(render(values), "reaper")
    assert settings.reaper_payment_recheck_seconds == 2.5
    assert settings.reaper_payment_grace_seconds == 0
    defaults = settings_from(render(CONNECTIONS), "reaper")
    assert defaults.reaper_payment_recheck_seconds == 10
    assert defaults.reaper_payment_grace_seconds == 900


def test_production_accepts_no_payment_provider_by_default() -> None:
    rendered = render(CONNECTIONS)
    for component in ("booking", "reaper"):
        settings = settings_from(rendered, component)
        assert settings.test_payments_enabled is False
        assert settings.razorpay_key_id is None
        assert provider_names(settings) == []
    assert "No payment provider is configured" in rendered.notes
    for component in ("booking", "reaper", *NO_PAYMENTS):
        assert not set(RAZORPAY_ENV) & set(container_env(rendered, component)), component


def test_the_test_provider_is_on_only_when_asked_and_the_notes_warn() -> None:
    with pytest.raises(helm.HelmError, match=r"needs payments\.testWebhookSecret"):
        render(merge(CONNECTIONS, {"payments": {"testProviderEnabled": True}}))
    existing = {
        "payments": {"testProviderEnabled": True, "testWebhookExistingSecret": "test-webhook"},
        "flower": {"enabled": True, "basicAuth": {"existingSecret": "flower"}},
    }
    for deployment in render(merge(CONNECTIONS, existing)).of_kind("Deployment"):
        env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
        # Every service process checks it at start-up.
        ref = env["BOXOFFICE_TEST_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "test-webhook", "key": "TEST_WEBHOOK_SECRET"}
    enabled = {"testProviderEnabled": True, "testWebhookSecret": "whsec-Zoë-" + "x" * 24}
    rendered = render(merge(CONNECTIONS, {"payments": enabled}))
    settings = settings_from(rendered, "booking")
    assert settings.test_webhook_secret.get_secret_value() == "whsec-Zoë-" + "x" * 24
    assert settings.test_payments_enabled is True
    assert provider_names(settings) == ["test"]
    assert "payments.testProviderEnabled is on in production" in rendered.notes
    staging = render(
        merge(
            CONNECTIONS,
            {"payments": {"testProviderEnabled": True}, "config": {"environment": "development"}},
        )
    )  # outside production the public default is accepted
    assert "testProviderEnabled" not in staging.notes


def test_inline_razorpay_secrets_build_the_provider_in_the_api_and_the_reaper() -> None:
    values = merge(
        inline_razorpay(baseUrl="https://razorpay.internal:8443"),
        {"payments": {"timeoutSeconds": 2.5}},
    )
    rendered = render(values)
    secret = rendered.get("Secret", f"{FULLNAME}-secrets")
    assert base64.b64decode(secret["data"]["RAZORPAY_KEY_SECRET"]).decode() == "key-secret"
    assert base64.b64decode(secret["data"]["RAZORPAY_WEBHOOK_SECRET"]).decode() == "hook-secret"
    # A secret never lands in the ConfigMap.
    assert "key-secret" not in str(config(rendered))
    assert "hook-secret" not in str(config(rendered))

    api = settings_from(rendered, "booking")
    assert api.razorpay_key_id == KEY_ID
    assert api.razorpay_key_secret is not None
    assert api.razorpay_key_secret.get_secret_value() == "key-secret"
    assert api.razorpay_webhook_secret is not None
    assert api.razorpay_webhook_secret.get_secret_value() == "hook-secret"
    assert api.razorpay_base_url == "https://razorpay.internal:8443"
    assert api.payment_timeout_seconds == 2.5
    assert provider_names(api) == ["razorpay"]

    # The reaper asks Razorpay about payments in progress: it needs the key, not the webhook secret.
    reaper = settings_from(rendered, "reaper")
    assert provider_names(reaper) == ["razorpay"]
    assert reaper.razorpay_key_secret is not None
    assert reaper.razorpay_key_secret.get_secret_value() == "key-secret"
    assert reaper.razorpay_webhook_secret is None
    assert "BOXOFFICE_RAZORPAY_WEBHOOK_SECRET" not in container_env(rendered, "reaper")

    for component in NO_PAYMENTS:
        assert not set(RAZORPAY_ENV) & set(container_env(rendered, component)), component
    for job in rendered.of_kind("Job"):
        assert not set(RAZORPAY_ENV) & set(env_of(job["spec"]["template"]["spec"]["containers"][0]))
    assert "No payment provider is configured" not in rendered.notes


def test_razorpay_secrets_from_an_existing_secret_are_referenced_not_copied() -> None:
    values = merge(
        CONNECTIONS,
        {
            "payments": {
                "razorpay": {
                    "keyId": KEY_ID,
                    "existingSecret": "rzp",
                    "existingSecretKeySecretKey": "key",
                    "existingSecretWebhookSecretKey": "hook",
                }
            }
        },
    )
    rendered = render(values)
    assert rendered.find("Secret", f"{FULLNAME}-secrets") is None
    api = container_env(rendered, "booking")
    assert api["BOXOFFICE_RAZORPAY_KEY_SECRET"]["valueFrom"] == {
        "secretKeyRef": {"name": "rzp", "key": "key"}
    }
    assert api["BOXOFFICE_RAZORPAY_WEBHOOK_SECRET"]["valueFrom"] == {
        "secretKeyRef": {"name": "rzp", "key": "hook"}
    }
    reaper = container_env(rendered, "reaper")
    assert reaper["BOXOFFICE_RAZORPAY_KEY_SECRET"]["valueFrom"] == {
        "secretKeyRef": {"name": "rzp", "key": "key"}
    }
    assert "BOXOFFICE_RAZORPAY_WEBHOOK_SECRET" not in reaper


def test_changing_a_razorpay_secret_rolls_the_pods() -> None:
    def checksum(rendered: Rendered, component: str) -> str:
        d = rendered.get("Deployment", name(component))
        value: str = d["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
        return value

    before = render(inline_razorpay())
    after = render(inline_razorpay(keySecret="rotated"))
    for component in ("booking", "reaper"):
        assert checksum(before, component) != checksum(after, component)


@pytest.mark.parametrize(
    "razorpay",
    [{"keyId": KEY_ID}, {"keySecret": "s"}, {"existingSecret": "rzp"}],
    ids=["key-id-without-secret", "secret-without-key-id", "existing-secret-without-key-id"],
)
def test_half_a_razorpay_configuration_fails_the_render(razorpay: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmError, match=r"payments\.razorpay"):
        render_chart(CHART, merge(CONNECTIONS, {"payments": {"razorpay": razorpay}}))


def test_only_the_api_and_the_reaper_reach_the_payment_provider() -> None:
    values = inline_razorpay(
        ports=[8443], networkPolicyPeers=[{"ipBlock": {"cidr": "198.51.100.0/24"}}]
    )
    rendered = render(values)

    def labels(component: str) -> dict[str, str]:
        return pod_labels(rendered, name(component))

    for component in ("booking", "reaper"):
        assert can_connect(rendered, labels(component), OUTSIDE, 8443), component
        assert not can_connect(rendered, labels(component), OUTSIDE, 443), component
        policy = rendered.get("NetworkPolicy", name(component))
        rules = [
            r
            for r in policy["spec"]["egress"]
            if {"port": 8443, "protocol": "TCP"} in r.get("ports", [])
        ]
        assert [r["to"] for r in rules] == [[{"ipBlock": {"cidr": "198.51.100.0/24"}}]]
    for component in NO_PAYMENTS:
        assert not can_connect(rendered, labels(component), OUTSIDE, 8443), component


def test_the_provider_is_reached_on_https_only_while_razorpay_is_on() -> None:
    on = render(inline_razorpay())
    off = render(CONNECTIONS)
    for component in ("booking", "reaper"):
        assert can_connect(on, pod_labels(on, name(component)), OUTSIDE, 443), component
        assert not can_connect(off, pod_labels(off, name(component)), OUTSIDE, 443), component


@pytest.mark.parametrize(
    "values",
    [
        {"config": {"cancelCutoffMinutes": -1}},
        {"config": {"seatCacheTtlSeconds": 0}},
        {"config": {"idempotencyTtlSeconds": 59}},
        {"config": {"rateLimit": {"requests": -1}}},
        {"config": {"rateLimit": {"windowSeconds": 0}}},
        {"config": {"rateLimit": {"window": 60}}},
        {"config": {"holdTtlSeconds": 0}},
        {"config": {"reaperPaymentRecheckSeconds": 0}},
        {"config": {"reaperPaymentGraceSeconds": -1}},
        {"config": {"maxSeatsPerHold": 0}},
        {"payments": {"testProviderEnabled": "yes"}},
        {"payments": {"timeoutSeconds": 0}},
        {"payments": {"razorpay": {"baseUrl": "api.razorpay.com"}}},
        {"payments": {"razorpay": {"ports": []}}},
        {"payments": {"razorpay": {"ports": [70000]}}},
        {"payments": {"razorpay": {"keyId": "rzp live"}}},
        {"payments": {"razorpay": {"keySecrt": "x"}}},
        {"payments": {"stripe": {}}},
    ],
    ids=[
        "negative-cutoff",
        "zero-cache-ttl",
        "short-idempotency",
        "negative-rate-limit",
        "zero-window",
        "rate-limit-typo",
        "zero-hold-ttl",
        "zero-recheck",
        "negative-grace",
        "zero-seats",
        "flag-not-bool",
        "zero-timeout",
        "url-no-scheme",
        "no-ports",
        "bad-port",
        "key-id-space",
        "secret-typo",
        "unknown-provider",
    ],
)
def test_the_schema_rejects_bad_booking_and_payment_values(values: dict[str, Any]) -> None:
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmError):
        chart.validate_schema(values)


def test_the_all_features_set_turns_razorpay_on_from_an_existing_secret() -> None:
    """So kubernetes-validate and checkov see the provider's env, secrets and egress."""
    rendered = render(VALUE_SETS["all-features"])
    assert "BOXOFFICE_RAZORPAY_KEY_SECRET" in container_env(rendered, "booking")
    assert "BOXOFFICE_RAZORPAY_KEY_SECRET" in container_env(rendered, "reaper")
    assert can_connect(rendered, pod_labels(rendered, name("reaper")), OUTSIDE, 443)
