"""A worker consumer that dead-letters the messages Celery would otherwise drop in silence.

Celery acknowledges, and forgets, a message it cannot decode (`on_decode_error`), one whose
task name no worker registered (`on_unknown_task`, then the `task_unknown` signal) and one that
is not a task message at all (`on_unknown_message`, `on_invalid_task`, then `task_rejected`).
The signals come after the message is gone, so this consumer records the dead letter first,
with the raw message and the reason, and only then lets Celery drop it. While the dead letter
cannot be written (PostgreSQL away) the message is put back on its queue after a pause, so it
is never lost. `create_celery_app` installs it as `worker_consumer` for every worker.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from boxoffice_db.engine import session_scope
from celery.worker.consumer import Consumer
from kombu.message import Message

from boxoffice_messaging.dead_letters import FailedMessage, record_dead_letter
from boxoffice_messaging.retry import PermanentError

log = logging.getLogger(__name__)

# Enough of an undecodable body to see what it was.
RAW_BODY_LIMIT = 8000
# Between two attempts to store a dead letter while the database is away.
STORE_RETRY_PAUSE_SECONDS = 1.0


class UnroutableMessage(PermanentError):
    """A message no task of this worker can run: unknown task, not a task, or undecodable."""


def _raw_body(message: Message) -> str:
    body = message.body
    if isinstance(body, bytes | bytearray):
        return bytes(body[:RAW_BODY_LIMIT]).decode("utf-8", errors="replace")
    return repr(body)[:RAW_BODY_LIMIT]


def _arguments(message: Message) -> tuple[list[Any], dict[str, Any]]:
    """The task's args and kwargs if the body decodes (protocol 2), else the raw body."""
    try:
        payload = message.decode()
    except Exception:
        return [_raw_body(message)], {}
    if isinstance(payload, list | tuple) and len(payload) == 3:
        args, kwargs, _ = payload
        if isinstance(args, list | tuple) and isinstance(kwargs, dict):
            return list(args), dict(kwargs)
    return [payload], {}


class DeadLetteringConsumer(Consumer):
    """Celery's consumer, dead-lettering what it would drop (see the module's docstring)."""

    def on_unknown_task(self, body: Any, message: Message, exc: Exception) -> None:
        name = str((message.headers or {}).get("task", "?"))
        if self._dead_letter(message, f"unknown task {name!r}: no worker of this queue runs it"):
            super().on_unknown_task(body, message, exc)

    def on_unknown_message(self, body: Any, message: Message) -> None:
        if self._dead_letter(message, "not a task message (no task name)"):
            super().on_unknown_message(body, message)

    def on_invalid_task(self, body: Any, message: Message, exc: Exception) -> None:
        if self._dead_letter(message, f"invalid task message: {type(exc).__name__}: {exc}"):
            super().on_invalid_task(body, message, exc)

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        reason = (
            f"undecodable message ({message.content_type}, {message.content_encoding}): "
            f"{type(exc).__name__}: {exc}"
        )
        if self._dead_letter(message, reason):
            super().on_decode_error(message, exc)

    def _dead_letter(self, message: Message, reason: str) -> bool:
        """Record the message as a dead letter; False (and the message requeued) if it cannot."""
        headers = message.headers or {}
        args, kwargs = _arguments(message)
        failed = FailedMessage(
            service=str(self.app.main or "boxoffice").removeprefix("boxoffice-"),
            task_name=str(headers.get("task") or "<unknown>")[:200],
            queue=str((message.delivery_info or {}).get("routing_key") or ""),
            task_id=str(headers["id"]) if headers.get("id") else None,
            args=args,
            kwargs=kwargs,
            error=UnroutableMessage(reason),
            attempts=1,
            reason=reason,
        )
        try:
            with session_scope() as session:
                record_dead_letter(session, failed)
        except Exception as exc:
            log.error("cannot dead-letter an unroutable message yet, requeueing it: %s", exc)
            time.sleep(STORE_RETRY_PAUSE_SECONDS)
            errors = getattr(self, "connection_errors", ())  # set by Consumer.__init__
            message.reject_log_error(log, errors, requeue=True)
            return False
        log.error(
            "message dead-lettered: %s",
            reason,
            extra={"task": failed.task_name, "task_id": failed.task_id, "queue": failed.queue},
        )
        return True
