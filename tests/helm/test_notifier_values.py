"""The notifier's values: SMTP and SMS providers, rate limits, pools, report recipients."""

from __future__ import annotations

import base64
from typing import Any

import helm_python as helm
import pytest
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
    settings_from_env,
)
from tests.helm.netpol import OUTSIDE, can_connect, pod_labels

GATEWAY = "https://sms.example.com/2010-04-01/Accounts/AC1/Messages.json"


def container_env(rendered: Rendered, component: str) -> dict[str, Manifest]:
    deployment = rendered.get("Deployment", name(component))
    return env_of(deployment["spec"]["template"]["spec"]["containers"][0])


def config(rendered: Rendered) -> dict[str, str]:
    data: dict[str, str] = rendered.get("ConfigMap", FULLNAME)["data"]
    return data


def settings_from(rendered: Rendered, component: str) -> Settings:
    """The Settings a component's process would build from its ConfigMap and plain env."""
    env = dict(config(rendered))
    env.update(
        {k: e["value"] for k, e in container_env(rendered, component).items() if "value" in e}
    )
    return settings_from_env(env)


def test_every_boxoffice_variable_the_chart_sets_is_a_setting() -> None:
    """A misspelt name would be ignored silently (the settings ignore unknown variables)."""
    known = {f"BOXOFFICE_{field.upper()}" for field in Settings.model_fields}
    rendered = render(VALUE_SETS["all-features"])
    names = set(config(rendered))
    for _, pod in pod_specs(rendered):
        for c in pod["containers"]:
            names |= set(env_of(c))
    assert {n for n in names if n.startswith("BOXOFFICE_")} - known == set()


def test_sms_gateway_settings_reach_the_sms_pods() -> None:
    values = merge(
        CONNECTIONS,
        {
            "sms": {
                "gatewayUrl": GATEWAY,
                "account": "AC1",
                "sender": "+15550100",
                "existingSecret": "boxoffice-sms",
                "existingSecretKey": "token",
                "timeoutSeconds": 5,
                "ratePerSecond": 12.5,
            }
        },
    )
    rendered = render(values)
    settings = settings_from(rendered, "notifier-sms")
    assert settings.sms_gateway_url == GATEWAY
    assert settings.sms_gateway_account == "AC1"
    assert settings.sms_sender == "+15550100"
    assert settings.sms_timeout_seconds == 5
    assert settings.sms_rate_per_second == 12.5
    token = container_env(rendered, "notifier-sms")["BOXOFFICE_SMS_GATEWAY_TOKEN"]
    assert token["valueFrom"] == {"secretKeyRef": {"name": "boxoffice-sms", "key": "token"}}
    # An existing Secret is referenced, never copied into the chart's.
    assert rendered.find("Secret", f"{FULLNAME}-secrets") is None
    # Only the pods that send SMS see its token.
    for component in ("booking", "relay", "notifier-email", "reaper", "scheduler"):
        assert "BOXOFFICE_SMS_GATEWAY_TOKEN" not in container_env(rendered, component)


def test_an_inline_sms_token_goes_into_the_chart_secret_and_rolls_the_pods() -> None:
    before = render(merge(CONNECTIONS, {"sms": {"gatewayUrl": GATEWAY, "token": "tok-1"}}))
    after = render(merge(CONNECTIONS, {"sms": {"gatewayUrl": GATEWAY, "token": "tok-2"}}))
    secret = after.get("Secret", f"{FULLNAME}-secrets")
    assert base64.b64decode(secret["data"]["SMS_GATEWAY_TOKEN"]).decode() == "tok-2"
    token = container_env(after, "notifier-sms")["BOXOFFICE_SMS_GATEWAY_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"] == {
        "name": f"{FULLNAME}-secrets",
        "key": "SMS_GATEWAY_TOKEN",
    }

    def checksum(rendered: Rendered) -> str:
        d = rendered.get("Deployment", name("notifier-sms"))
        value: str = d["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
        return value

    assert checksum(before) != checksum(after)


def test_no_sms_gateway_and_no_token_by_default() -> None:
    rendered = render(CONNECTIONS)
    assert "BOXOFFICE_SMS_GATEWAY_URL" not in config(rendered)
    assert "BOXOFFICE_SMS_GATEWAY_TOKEN" not in container_env(rendered, "notifier-sms")
    assert settings_from(rendered, "notifier-sms").sms_gateway_url is None


def test_smtp_settings_and_rate_limit_reach_the_email_pods() -> None:
    values = merge(
        CONNECTIONS,
        {"smtp": {"timeoutSeconds": 7, "idleSeconds": 0, "ratePerSecond": 50, "port": 465}},
    )
    settings = settings_from(render(values), "notifier-email")
    assert settings.smtp_timeout_seconds == 7
    assert settings.smtp_idle_seconds == 0
    assert settings.smtp_rate_per_second == 50
    assert settings.smtp_port == 465


def test_each_channel_sizes_its_own_pool_with_its_own_setting() -> None:
    rendered = render(CONNECTIONS)
    email = container_env(rendered, "notifier-email")
    sms = container_env(rendered, "notifier-sms")
    assert email["BOXOFFICE_NOTIFIER_EMAIL_CONCURRENCY"]["value"] == "32"
    assert sms["BOXOFFICE_NOTIFIER_SMS_CONCURRENCY"]["value"] == "8"
    # The notifier prefers its channel's variable; the generic one would only blur that.
    assert "BOXOFFICE_WORKER_CONCURRENCY" not in email
    assert "BOXOFFICE_WORKER_CONCURRENCY" not in sms
    assert container_env(rendered, "reaper")["BOXOFFICE_WORKER_CONCURRENCY"]["value"] == "4"
    settings = settings_from(rendered, "notifier-sms")
    defaults = Settings.model_fields
    assert settings.notifier_sms_concurrency == defaults["notifier_sms_concurrency"].default
    sized = render(merge(CONNECTIONS, {"notifier": {"email": {"concurrency": 64}}}))
    assert settings_from(sized, "notifier-email").notifier_email_concurrency == 64


def test_report_recipients_retries_and_reminder_window() -> None:
    values = merge(
        CONNECTIONS,
        {
            "notifier": {
                "reportRecipients": ["ops@example.com", "boss@example.com"],
                "reminderWindowSeconds": 3600,
                "retry": {"backoffSeconds": 2, "backoffMaxSeconds": 60, "maxRetries": 5},
            }
        },
    )
    settings = settings_from(render(values), "notifier-email")
    assert settings.report_recipients == ["ops@example.com", "boss@example.com"]
    assert settings.reminder_window_seconds == 3600
    assert settings.notifier_retry_backoff_seconds == 2
    assert settings.notifier_retry_backoff_max_seconds == 60
    assert settings.notifier_max_retries == 5
    assert "BOXOFFICE_REPORT_RECIPIENTS" not in config(render(CONNECTIONS))


def test_the_sms_pods_reach_the_gateway_and_the_email_pods_reach_smtp_only() -> None:
    values = merge(
        CONNECTIONS,
        {
            "sms": {
                "gatewayUrl": GATEWAY,
                "ports": [8443],
                "networkPolicyPeers": [{"ipBlock": {"cidr": "203.0.113.0/24"}}],
            },
            "smtp": {"networkPolicyPeers": [{"ipBlock": {"cidr": "10.0.7.0/24"}}]},
        },
    )
    rendered = render(values)

    def labels(component: str) -> dict[str, str]:
        return pod_labels(rendered, name(component))

    assert can_connect(rendered, labels("notifier-sms"), OUTSIDE, 8443)
    assert not can_connect(rendered, labels("notifier-sms"), OUTSIDE, 443)
    assert not can_connect(rendered, labels("notifier-sms"), OUTSIDE, 587)
    assert can_connect(rendered, labels("notifier-email"), OUTSIDE, 587)
    assert not can_connect(rendered, labels("notifier-email"), OUTSIDE, 8443)
    for component in ("booking", "relay", "reaper", "scheduler"):
        assert not can_connect(rendered, labels(component), OUTSIDE, 8443), component

    def rule_to(component: str, port: int) -> Manifest:
        policy = rendered.get("NetworkPolicy", name(component))
        rules = [
            r for r in policy["spec"]["egress"] if {"port": port, "protocol": "TCP"} in r["ports"]
        ]
        assert len(rules) == 1
        rule: Manifest = rules[0]
        return rule

    assert rule_to("notifier-sms", 8443)["to"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}]
    assert rule_to("notifier-email", 587)["to"] == [{"ipBlock": {"cidr": "10.0.7.0/24"}}]


def test_the_sms_gateway_is_reachable_on_https_by_default() -> None:
    rendered = render(CONNECTIONS)
    sms = pod_labels(rendered, name("notifier-sms"))
    assert can_connect(rendered, sms, OUTSIDE, 443)


@pytest.mark.parametrize(
    "values",
    [
        {"sms": {"gatewayUrl": "sms.example.com"}},
        {"sms": {"ratePerSecond": 0}},
        {"sms": {"ports": []}},
        {"smtp": {"ratePerSecond": -1}},
        {"notifier": {"reportRecipients": ["a@example.com,b@example.com"]}},
        {"notifier": {"email": {"concurrency": 0}}},
        {"sms": {"tokn": "x"}},
    ],
    ids=["url-no-scheme", "zero-rate", "no-ports", "negative-rate", "comma", "zero-pool", "typo"],
)
def test_the_schema_rejects_bad_notifier_values(values: dict[str, Any]) -> None:
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmError):
        chart.validate_schema(values)


def test_the_notes_say_when_sms_or_the_daily_report_would_go_nowhere() -> None:
    unset = render(CONNECTIONS).notes
    assert "No SMS gateway is configured (sms.gatewayUrl)" in unset
    assert "set notifier.reportRecipients" in unset
    configured = render(
        merge(
            CONNECTIONS,
            {"sms": {"gatewayUrl": GATEWAY}, "notifier": {"reportRecipients": ["ops@example.com"]}},
        )
    ).notes
    assert "sms.gatewayUrl" not in configured
    assert "reportRecipients" not in configured
