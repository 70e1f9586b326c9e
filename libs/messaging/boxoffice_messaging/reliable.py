"""A base task class that retries transient errors with backoff and dead-letters the rest.

Services declare tasks with it as their base, the name on the decorator:

    @app.task(name="notifier.send_booking_confirmation", base=ReliableTask, bind=True,
              service="notifier", retry_policy=policy)
    def send_booking_confirmation(self: ReliableTask, message: object) -> str: ...

(or with `reliable_task(app, name, ...)` for a function that takes no `self`). The function
raises; the base class decides, whatever was raised: every call goes through `run_reliably`,
even one whose arguments do not fit the function. A transient error (a dropped connection, a
timeout, `TransientError`) is retried with exponential backoff, jitter and a cap; a
permanent one (a malformed message, `PermanentError`) or the last failed retry moves the
original message to the service's dead-letter queue with the reason and the attempt count.
Either way the worker goes on consuming. Task status is recorded in the `tasks` table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar, cast

from boxoffice_db.engine import session_scope
from celery import Celery, Task
from celery.exceptions import Ignore, Reject, Retry

from boxoffice_messaging import task_status  # noqa: F401 - connects the status signals
from boxoffice_messaging.dead_letters import FailedMessage, record_dead_letter
from boxoffice_messaging.retry import Classifier, RetryPolicy, Verdict, classify

log = logging.getLogger(__name__)

R = TypeVar("R")

# While the dead-letter queue itself cannot be written (database down), keep retrying at
# this pace rather than dropping the message.
DEAD_LETTER_RETRY_SECONDS = 5.0


class ReliableTask(Task):  # type: ignore[type-arg]
    """Celery task base: classify errors, retry with backoff, dead-letter, track status."""

    # Set per task by `reliable_task` (Celery copies task options onto the class).
    service: str = "boxoffice"
    retry_policy: RetryPolicy | None = None
    permanent_errors: tuple[type[BaseException], ...] = ()
    transient_errors: tuple[type[BaseException], ...] = ()
    classifier: Classifier | None = None
    track_status: bool = True
    # Celery's own limit (3 by default) would raise the error instead of retrying; the
    # RetryPolicy decides when to stop.
    max_retries = None
    # False for periodic jobs whose next run redoes the work: a failure is logged and
    # recorded as FAILURE, and there is no message worth keeping.
    dead_letter: bool = True

    def policy(self) -> RetryPolicy:
        return self.retry_policy or RetryPolicy()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # The worker's tracer calls a task with its own __call__ instead of `run`, with the
        # request already pushed; so does a direct call. Either way the errors are decided here.
        return self.run_reliably(self.run, args, kwargs)

    def on_give_up(self, exc: Exception, reason: str, args: Sequence[Any]) -> None:
        """Called once the message is given up on, before it is dead-lettered (a service records
        its own outcome here: the notifier marks the delivery failed)."""

    def run_reliably(
        self, fn: Callable[..., R], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> R:
        """Call `fn`; on an error, retry or dead-letter (and then re-raise: the task FAILED)."""
        try:
            return fn(*args, **kwargs)
        except (Retry, Reject, Ignore):
            raise
        except Exception as exc:
            self._give_up_or_retry(exc, args, kwargs)
            raise

    def _give_up_or_retry(
        self, exc: Exception, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> None:
        verdict = classify(
            exc,
            permanent=self.permanent_errors,
            transient=self.transient_errors,
            classifier=self.classifier,
        )
        retries = int(self.request.retries or 0)
        policy = self.policy()
        error = f"{type(exc).__name__}: {exc}"
        if verdict is Verdict.TRANSIENT and not policy.exhausted(retries):
            countdown = policy.delay(retries, hint=getattr(exc, "retry_after", None))
            log.warning(
                "task failed, retrying in %.1fs: %s",
                countdown,
                error,
                extra={"task": self.name, "task_id": self.request.id, "retries": retries},
            )
            self.retry_or_requeue(exc, countdown)
        if verdict is Verdict.PERMANENT:
            reason = f"permanent error: {error}"
        else:
            reason = f"gave up after {retries + 1} attempts: {error}"
        self.on_give_up(exc, reason, args)
        if not self.dead_letter:
            log.error(
                "task failed and is not retried: %s",
                error,
                extra={"task": self.name, "task_id": self.request.id},
            )
            return
        failed = FailedMessage(
            service=self.service,
            task_name=self.name,
            queue=self._queue(),
            task_id=self.request.id,
            args=list(args),
            kwargs=dict(kwargs),
            error=exc,
            attempts=retries + 1,
            reason=reason,
        )
        try:
            with session_scope() as session:
                record_dead_letter(session, failed)
        except Exception as store_error:
            log.error(
                "cannot dead-letter the message yet, retrying: %s",
                store_error,
                extra={"task": self.name, "task_id": self.request.id},
            )
            self.retry_or_requeue(exc, DEAD_LETTER_RETRY_SECONDS)
        log.error(
            "message dead-lettered: %s",
            reason,
            extra={"task": self.name, "task_id": self.request.id, "service": self.service},
        )

    def retry_or_requeue(self, exc: Exception, countdown: float) -> NoReturn:
        """Publish the retry and stop this attempt; never drop the message.

        Celery turns a retry it cannot publish (Redis down) into a Reject that acks the
        message, which would lose it; requeue it instead (or, with Redis unreachable, the
        unacknowledged message comes back after the visibility timeout).
        """
        try:
            raise self.retry(exc=exc, countdown=countdown)
        except Reject as rejected:
            raise Reject(getattr(rejected, "reason", str(exc)), requeue=True) from exc

    def _queue(self) -> str:
        delivery = self.request.delivery_info or {}
        queue = delivery.get("routing_key") or getattr(self, "queue", None) or ""
        return str(queue)


def reliable_task(
    app: Celery,
    name: str,
    *,
    service: str | None = None,
    retry_policy: RetryPolicy | None = None,
    permanent: tuple[type[BaseException], ...] = (),
    transient: tuple[type[BaseException], ...] = (),
    classifier: Classifier | None = None,
    track_status: bool = True,
    dead_letter: bool = True,
    **options: Any,
) -> Callable[[Callable[..., Any]], ReliableTask]:
    """Register `fn` on `app` as a ReliableTask named `name`.

    `service` names the dead-letter queue (default: the app's name without "boxoffice-");
    `permanent`/`transient` add error types to the defaults; `classifier` may decide first
    (return None to fall through); `dead_letter=False` suits periodic jobs whose next run
    redoes the work; `options` go to `app.task` (queue, time limits, ...).
    """
    dead_letter_service = service or app.main.removeprefix("boxoffice-")

    def decorate(fn: Callable[..., Any]) -> ReliableTask:
        def run(self: ReliableTask, *args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)  # ReliableTask.__call__ decides on its errors

        # Not functools.wraps: Celery would read fn's signature through __wrapped__, and a
        # message with the wrong arguments must reach run_reliably to be dead-lettered.
        target = getattr(fn, "func", fn)  # a functools.partial names its function
        run.__name__ = run.__qualname__ = name.rsplit(".", 1)[-1]
        run.__module__ = getattr(target, "__module__", __name__)
        run.__doc__ = getattr(target, "__doc__", None)

        task = app.task(  # type: ignore[no-untyped-call]
            name=name,
            bind=True,
            base=ReliableTask,
            service=dead_letter_service,
            retry_policy=retry_policy,
            permanent_errors=permanent,
            transient_errors=transient,
            classifier=classifier,
            track_status=track_status,
            dead_letter=dead_letter,
            **options,
        )(run)
        return cast(ReliableTask, task)

    return decorate
