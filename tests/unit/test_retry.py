"""The retry policy's backoff and the transient/permanent classification of errors."""

from __future__ import annotations

import random
import smtplib

import pytest
import sqlalchemy.exc
from boxoffice_contracts.envelope import MalformedMessage
from boxoffice_messaging.retry import (
    PermanentError,
    RetryPolicy,
    TransientError,
    Verdict,
    classify,
)


def test_backoff_grows_exponentially_within_jitter_bounds() -> None:
    policy = RetryPolicy(base_seconds=1, factor=2, cap_seconds=1000)
    rng = random.Random(7)
    for retries in range(8):
        ceiling = 2**retries
        delays = [policy.delay(retries, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        # Jitter: the delays of one retry number are spread, not all equal.
        assert max(delays) - min(delays) > ceiling / 4


def test_backoff_never_exceeds_the_cap() -> None:
    policy = RetryPolicy(base_seconds=1, factor=2, cap_seconds=30)
    assert max(policy.delay(n) for n in range(100) for _ in range(10)) <= 30
    assert min(policy.delay(1000) for _ in range(100)) >= 15


def test_retries_are_exhausted_after_max_retries() -> None:
    policy = RetryPolicy(max_retries=3)
    assert not policy.exhausted(2)
    assert policy.exhausted(3)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(),
        TimeoutError(),
        smtplib.SMTPServerDisconnected("gone"),
        TransientError("try later"),
        sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed")),
        RuntimeError("nobody named this one"),
    ],
)
def test_outages_and_unknown_errors_are_transient(error: BaseException) -> None:
    assert classify(error) is Verdict.TRANSIENT


@pytest.mark.parametrize(
    "error",
    [
        MalformedMessage("not an Envelope"),
        PermanentError("bad address"),
        KeyError("booking"),
        TypeError("takes 1 positional argument but 2 were given"),
        sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
    ],
)
def test_malformed_input_and_bugs_that_cannot_heal_are_permanent(error: BaseException) -> None:
    assert classify(error) is Verdict.PERMANENT


def test_a_task_can_declare_its_own_permanent_errors_and_classifier() -> None:
    refused = smtplib.SMTPRecipientsRefused({"x@example.com": (550, b"no such user")})
    assert classify(refused) is Verdict.TRANSIENT  # an OSError by default
    assert classify(refused, permanent=(smtplib.SMTPRecipientsRefused,)) is Verdict.PERMANENT

    def by_smtp_code(exc: BaseException) -> Verdict | None:
        code = getattr(exc, "smtp_code", None)
        return Verdict.PERMANENT if code is not None and code >= 500 else None

    assert classify(smtplib.SMTPDataError(554, b"rejected"), classifier=by_smtp_code) is (
        Verdict.PERMANENT
    )
    assert classify(smtplib.SMTPDataError(451, b"later"), classifier=by_smtp_code) is (
        Verdict.TRANSIENT
    )


def test_a_providers_retry_after_hint_lengthens_the_delay_up_to_the_cap() -> None:
    policy = RetryPolicy(base_seconds=1, factor=2, cap_seconds=60)
    assert policy.delay(0, hint=30) == 30
    assert policy.delay(0, hint=3600) == 60


def test_the_notifiers_delivery_errors_are_in_the_one_taxonomy() -> None:
    from boxoffice_notifier.errors import PermanentDeliveryError, TransientDeliveryError

    assert classify(TransientDeliveryError("451 try later", retry_after=5)) is Verdict.TRANSIENT
    assert classify(PermanentDeliveryError("550 no such user")) is Verdict.PERMANENT
    assert isinstance(TransientDeliveryError("x"), TransientError)
    # A bug nobody classified is retried, then dead-lettered: never acked and forgotten.
    assert classify(ZeroDivisionError()) is Verdict.TRANSIENT


def test_the_notifiers_backoff_must_fit_in_the_visibility_timeout() -> None:
    from boxoffice_settings import Settings
    from pydantic import ValidationError

    def settings(backoff_max: float) -> Settings:
        return Settings(
            database_url="postgresql://x@h/db",
            redis_url="redis://h/0",
            notifier_retry_backoff_max_seconds=backoff_max,
            celery_visibility_timeout_seconds=1800,
        )

    # 7,200 s against 1,800 s: a delayed retry would be redelivered before it is due.
    with pytest.raises(ValidationError, match="NOTIFIER_RETRY_BACKOFF_MAX_SECONDS"):
        settings(7200)
    assert settings(900).notifier_retry_backoff_max_seconds == 900
