"""The Celery settings every service shares (see docs/architecture.md, "How an event flows")."""

from __future__ import annotations

from boxoffice_settings import Settings
from celery import Celery
from kombu import Queue

from boxoffice_messaging import kombu_fixes
from boxoffice_messaging.liveness import install_liveness_file
from boxoffice_messaging.redis_client import broker_transport_options, tls_options
from boxoffice_messaging.routes import QUEUE_EMAIL, QUEUE_REAPER, QUEUE_SMS


def create_celery_app(name: str, settings: Settings) -> Celery:
    """A Celery app on the Redis broker with at-least-once, JSON-only delivery."""
    # A broker restart must not stop a worker (see boxoffice_messaging.kombu_fixes).
    kombu_fixes.install()
    app = Celery(name, broker=settings.redis_url)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_track_started=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_transport_options={
            "visibility_timeout": settings.celery_visibility_timeout_seconds,
            "socket_keepalive": True,
            "health_check_interval": 10,
            # sentinel:// brokers: which master the Sentinels are asked for.
            **broker_transport_options(settings.redis_url, settings.redis_sentinel_master),
        },
        # The same for a sentinel:// result backend (the notifier's chord results use REDIS_URL).
        result_backend_transport_options=broker_transport_options(
            settings.redis_url, settings.redis_sentinel_master
        ),
        task_queues=[Queue(QUEUE_EMAIL), Queue(QUEUE_SMS), Queue(QUEUE_REAPER)],
        task_create_missing_queues=False,
        # For Flower only (task metrics and status come from signals): off unless asked for.
        worker_send_task_events=settings.celery_task_events,
        task_send_sent_event=settings.celery_task_events,
        worker_hijack_root_logger=False,
        # Undecodable messages and unknown task names are dead-lettered, not acked and lost.
        worker_consumer="boxoffice_messaging.consumer:DeadLetteringConsumer",
        worker_max_tasks_per_child=settings.worker_max_tasks_per_child,
        enable_utc=True,
        timezone="UTC",
    )
    tls = tls_options(settings.redis_url)
    if tls is not None:
        # rediss://: the broker and a result backend on the same URL verify the server.
        app.conf.update(broker_use_ssl=tls, redis_backend_use_ssl=tls)
    if settings.worker_liveness_file:
        install_liveness_file(
            app, settings.worker_liveness_file, settings.worker_liveness_interval_seconds
        )
    return app
