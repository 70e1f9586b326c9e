"""Retry policy: exponential backoff with jitter and a cap, and transient/permanent errors."""

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
from boxoffice_settings import Settings


class TransientError(Exception):
    """Raise from a task for a failure that may pass by itself: the task is retried."""


class PermanentError(Exception):
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

    def delay(self, retries: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `retries + 1`."""
        exponential = self.base_seconds * self.factor ** min(retries, 64)
        ceiling = min(self.cap_seconds, exponential)
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)

    def exhausted(self, retries: int) -> bool:
        """True when `retries` retries have been made and no more are allowed."""
        return retries >= self.max_retries

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            max_retries=settings.retry_max_retries,
            base_seconds=settings.retry_backoff_base_seconds,
            cap_seconds=settings.retry_backoff_max_seconds,
        )
