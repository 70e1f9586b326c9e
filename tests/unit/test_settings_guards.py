"""Configuration guards: settings that would lose money or deliver twice are refused at start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from boxoffice_settings import Settings
from pydantic import ValidationError

BASE = {"database_url": "postgresql://x/y", "redis_url": "redis://127.0.0.1:1/0"}
SCHEMA = Path(__file__).parents[2] / "deploy/helm/boxoffice/values.schema.json"


def settings(**values: object) -> Settings:
    return Settings.model_validate({**BASE, **values})


def test_production_test_payments_with_the_default_webhook_secret_are_refused() -> None:
    """Issue 14, finding 8: anyone could sign a test `payment.succeeded` with the default."""
    with pytest.raises(ValidationError, match="TEST_WEBHOOK_SECRET"):
        settings(env="production", test_payments_enabled=True)
    chosen = settings(env="production", test_payments_enabled=True, test_webhook_secret="s" * 40)
    assert chosen.test_payments_enabled
    assert settings(env="development", test_payments_enabled=True).test_payments_enabled


def test_the_notifier_backoff_cap_is_checked_against_the_visibility_timeout() -> None:
    """Issue 14, finding 8: 7,200 s of backoff under a 1,800 s visibility timeout is refused."""
    with pytest.raises(ValidationError, match="NOTIFIER_RETRY_BACKOFF_MAX_SECONDS"):
        settings(notifier_retry_backoff_max_seconds=7200, celery_visibility_timeout_seconds=1800)
    assert settings(notifier_retry_backoff_max_seconds=900).notifier_retry_backoff_max_seconds


def test_the_charts_smallest_visibility_timeout_is_one_the_services_accept() -> None:
    """Issue 14, finding 8: the chart's schema allows no value the settings refuse."""
    schema = json.loads(SCHEMA.read_text())
    field = schema["properties"]["config"]["properties"]["celeryVisibilityTimeoutSeconds"]
    smallest = field["minimum"]
    assert settings(celery_visibility_timeout_seconds=smallest)
    with pytest.raises(ValidationError):
        settings(celery_visibility_timeout_seconds=smallest - 1)
