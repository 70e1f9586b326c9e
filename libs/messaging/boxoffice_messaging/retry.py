"""The one retry policy and error taxonomy of every worker.

A task raises `TransientError` (try again later) or `PermanentError` (no retry can help), or
any other exception, which `classify` sorts; `RetryPolicy` says when to retry and when to stop.
Services subclass the two errors for their own failures (the notifier's delivery errors), so
one classification and one policy decide for every worker.
"""

from __future__ import annotations

import enum
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc
from boxoffice_contracts.envelope import MalformedMessage


class TaskError(Exception):
    """A failure a task raises on purpose: `reason` is fit to store and show to operators;
    `retry_after` is a hint in seconds (a provider's Retry-After), if any."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class TransientError(TaskError):
    """Raise from a task for a failure that may pass by itself: the task is retried."""


class PermanentError(TaskError):
    """Raise from a task for a failure no retry can fix: the message is dead-lettered at once."""


class Verdict(enum.StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


# Checked before TRANSIENT_ERRORS: an explicit verdict beats a broad base class (smtplib's
# errors, for one, are all OSErrors, yet a refused recipient never gets better).
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    PermanentError,
    MalformedMessage,
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    sqlalchemy.exc.IntegrityError,
    sqlalchemy.exc.DataError,
    sqlalchemy.exc.ProgrammingError,
)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    OSError,  # ConnectionError, TimeoutError, socket errors, smtplib's disconnects
    socket.timeout,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    kombu.exceptions.OperationalError,
)

Classifier = Callable[[BaseException], "Verdict | None"]


def classify(
    exc: BaseException,
    *,
    permanent: tuple[type[BaseException], ...] = (),
    transient: tuple[type[BaseException], ...] = (),
    classifier: Classifier | None = None,
) -> Verdict:
    """Decide whether retrying `exc` can help.

    Order: the task's own `classifier`, then its extra permanent and transient types, then
    the defaults. A database error on a dropped connection is transient whatever its class.
    An error nobody named is treated as transient: it is retried, and dead-lettered once the
    retries run out, so an unexpected bug costs some retries but never loses the message.
    """
    if classifier is not None:
        verdict = classifier(exc)
        if verdict is not None:
            return verdict
    if isinstance(exc, permanent):
        return Verdict.PERMANENT
    if isinstance(exc, transient):
        return Verdict.TRANSIENT
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return Verdict.TRANSIENT
    if isinstance(exc, PERMANENT_ERRORS):
        return Verdict.PERMANENT
    return Verdict.TRANSIENT


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: attempt n waits about base * factor**n, never more than `cap`.

    Jitter is "equal jitter": half the delay is fixed and half random, so retries of many
    messages that failed together (an SMTP outage) spread out instead of returning in step,
    and no retry comes back at once.
    """

    max_retries: int = 10
    base_seconds: float = 1.0
    factor: float = 2.0
    cap_seconds: float = 300.0

    def delay(
        self, retries: int, rng: random.Random | None = None, hint: float | None = None
    ) -> float:
        """Seconds to wait before retry number `retries + 1`; at least `hint` (a provider's
        Retry-After), itself never more than the cap."""
        exponential = self.base_seconds * self.factor ** min(retries, 64)
        ceiling = min(self.cap_seconds, exponential)
        delay = ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
        if hint is not None:
            delay = max(delay, min(hint, self.cap_seconds))
        return delay

    def exhausted(self, retries: int) -> bool:
        """True when `retries` retries have been made and no more are allowed."""
        return retries >= self.max_retries
