"""One pydantic-settings `Settings`, built once per process from environment variables."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Configuration shared by all services; each service reads the part it needs."""

    model_config = SettingsConfigDict(env_prefix="BOXOFFICE_", extra="ignore")

    env: Environment = Environment.PRODUCTION
    service_name: str = "boxoffice"

    database_url: str = Field(
        validation_alias=AliasChoices("DATABASE_URL", "BOXOFFICE_DATABASE_URL"),
    )
    redis_url: str = Field(validation_alias=AliasChoices("REDIS_URL", "BOXOFFICE_REDIS_URL"))
    # The master's name when REDIS_URL is a sentinel:// URL (ignored otherwise).
    redis_sentinel_master: str = Field(default="mymaster", min_length=1)
    db_pool_size: int = Field(default=10, ge=1)

    # Holds
    hold_ttl_seconds: int = Field(default=600, ge=1)
    max_seats_per_hold: int = Field(default=10, ge=1)

    # API
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_workers: int = Field(default=1, ge=1)
    bootstrap_api_key: SecretStr | None = None
    public_base_url: str = "http://127.0.0.1:8000"

    # Booking rules
    cancel_cutoff_minutes: int = Field(default=120, ge=0)
    seat_cache_ttl_seconds: int = Field(default=300, ge=1)
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    # Per-API-key request budget per window; 0 turns rate limiting off.
    rate_limit_requests: int = Field(default=600, ge=0)
    rate_limit_window_seconds: int = Field(default=60, ge=1)

    # Payments: `test` is on outside production (or when enabled); `razorpay` when keyed.
    test_payments_enabled: bool = False
    test_webhook_secret: SecretStr = SecretStr("test-webhook-secret")
    razorpay_key_id: str | None = None
    razorpay_key_secret: SecretStr | None = None
    razorpay_webhook_secret: SecretStr | None = None
    razorpay_base_url: str = "https://api.razorpay.com"
    payment_timeout_seconds: float = Field(default=10.0, gt=0)

    # Outbox relay
    relay_batch_size: int = Field(default=200, ge=1)
    relay_poll_interval_seconds: float = Field(default=0.05, gt=0)
    relay_backoff_max_seconds: float = Field(default=30.0, gt=0)
    # A delivery still PENDING this long after publishing, with its queue empty, was lost
    # in Redis and is sent again (consumers are idempotent).
    relay_redeliver_after_seconds: float = Field(default=600.0, gt=0)
    relay_redeliver_check_seconds: float = Field(default=10.0, gt=0)

    # Reaper and scheduler
    reaper_batch_size: int = Field(default=500, ge=1)
    # A sweep also follows the holds falling due until the next sweep (boxoffice_reaper.tasks),
    # so the expiry lag is not floored by this interval, as it was with plain sweeps.
    reaper_sweep_interval_seconds: float = Field(default=1.0, gt=0)
    # A due hold with a payment in progress: ask the provider at most this often, and expire
    # it anyway once this long past its expiry (a late capture is then re-acquired or refunded).
    reaper_payment_recheck_seconds: float = Field(default=10.0, gt=0)
    reaper_payment_grace_seconds: float = Field(default=900.0, ge=0)

    # Scheduler: each job's timing is seconds ("300"), a UTC cron expression, or "off";
    # a mounted YAML file can set them too (see services/scheduler).
    scheduler_schedule_file: str | None = None
    schedule_showtime_reminders: str = "300"
    schedule_daily_report: str = "5 0 * * *"
    schedule_purge_retention: str = "604800"
    schedule_purge_expired_keys: str = "3600"
    # Leader election: "auto" uses a Kubernetes Lease inside a cluster, a Redis lock elsewhere.
    scheduler_leader_election: Literal["auto", "kubernetes", "redis"] = "auto"
    scheduler_identity: str | None = None
    scheduler_lease_name: str = "boxoffice-scheduler"
    scheduler_lease_namespace: str | None = None
    scheduler_lease_duration_seconds: float = Field(default=15.0, gt=0)
    scheduler_renew_deadline_seconds: float = Field(default=10.0, gt=0)
    scheduler_retry_period_seconds: float = Field(default=2.0, gt=0)

    # Data retention (reaper): personal data of expired/cancelled bookings, and old rows.
    retention_personal_data_days: float = Field(default=30.0, ge=0)
    retention_outbox_days: float = Field(default=7.0, ge=0)
    retention_deliveries_days: float = Field(default=30.0, ge=0)
    retention_tasks_days: float = Field(default=30.0, ge=0)
    retention_revoked_api_keys_days: float = Field(default=90.0, ge=0)
    retention_webhook_events_days: float = Field(default=30.0, ge=0)
    retention_batch_size: int = Field(default=1000, ge=1)

    # Celery: visibility_timeout must exceed the longest task, or Redis redelivers it while it runs.
    # Tests lower it (with the retry cap) so a killed worker's message comes back quickly.
    celery_visibility_timeout_seconds: int = Field(default=1800, ge=5)
    worker_concurrency: int = Field(default=4, ge=1)
    worker_max_tasks_per_child: int = Field(default=10000, ge=1)
    # A worker touches this file from its event loop while it consumes; empty = off. The
    # Kubernetes liveness probe runs `python -m boxoffice_messaging.heartbeat` against it.
    worker_liveness_file: str = ""
    worker_liveness_interval_seconds: float = Field(default=5.0, gt=0)

    # Task retries: exponential backoff with jitter, capped well below the visibility timeout
    # (a retry is a countdown message, which Redis would redeliver if it outlived the timeout).
    retry_max_retries: int = Field(default=10, ge=0)
    retry_backoff_base_seconds: float = Field(default=1.0, gt=0)
    retry_backoff_max_seconds: float = Field(default=300.0, gt=0)

    # Email
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout_seconds: float = 10.0
    # A PEM bundle to trust for the SMTP server's certificate (default: the system store).
    smtp_ca_file: str | None = None
    # An idle pooled SMTP connection older than this is closed rather than reused.
    smtp_idle_seconds: float = Field(default=30.0, ge=0)
    mail_from: str = "Boxoffice <tickets@boxoffice.invalid>"
    # Operators who receive the daily report (comma-separated in the environment).
    report_recipients: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # SMS: a Twilio-style HTTP gateway (form POST of To/From/Body); unset URL = SMS disabled.
    sms_gateway_url: str | None = None
    sms_gateway_account: str | None = None
    sms_gateway_token: SecretStr | None = None
    sms_sender: str = "BOXOFC"
    sms_timeout_seconds: float = Field(default=10.0, gt=0)

    # Notifier: per-channel thread pools (sending is I/O-bound), provider rate limits shared
    # through Redis, retries with capped exponential backoff. 32 email threads was the best
    # of 1-64 in `make bench-notifier` (100 ms SMTP latency); SMS is bounded by its rate limit.
    notifier_email_concurrency: int = Field(default=32, ge=1)
    notifier_sms_concurrency: int = Field(default=8, ge=1)
    smtp_rate_per_second: float = Field(default=20.0, gt=0)
    sms_rate_per_second: float = Field(default=5.0, gt=0)
    notifier_retry_backoff_seconds: float = Field(default=5.0, gt=0)
    notifier_retry_backoff_max_seconds: float = Field(default=300.0, gt=0)
    notifier_max_retries: int = Field(default=20, ge=0)
    reminder_window_seconds: int = Field(default=7200, ge=60)
    # How often the scheduler looks for due reminders; each booking is reminded once anyway.
    reminder_interval_seconds: float = Field(default=300.0, gt=0)

    # Observability: a port of 0 disables a worker's metrics server.
    metrics_port: int = Field(default=0, ge=0, le=65535)
    log_level: str = "INFO"

    @field_validator("report_recipients", mode="before")
    @classmethod
    def _split_recipients(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _no_development_secrets_in_production(self) -> Settings:
        if self.env is Environment.PRODUCTION and self.bootstrap_api_key is not None:
            key = self.bootstrap_api_key.get_secret_value()
            if len(key) < 32:
                raise ValueError("BOXOFFICE_BOOTSTRAP_API_KEY must be at least 32 characters")
        return self

    @model_validator(mode="after")
    def _retries_fit_in_the_visibility_timeout(self) -> Settings:
        if self.retry_backoff_max_seconds * 2 > self.celery_visibility_timeout_seconds:
            raise ValueError(
                "BOXOFFICE_RETRY_BACKOFF_MAX_SECONDS must be at most half of "
                "BOXOFFICE_CELERY_VISIBILITY_TIMEOUT_SECONDS"
            )
        return self

    @model_validator(mode="after")
    def _lease_timings_leave_room(self) -> Settings:
        # A leader must give up before its lease can lapse, and retry several times before that.
        if not (
            self.scheduler_retry_period_seconds
            < self.scheduler_renew_deadline_seconds
            < self.scheduler_lease_duration_seconds
        ):
            raise ValueError(
                "scheduler timings need retry period < renew deadline < lease duration"
            )
        if self.retention_deliveries_days < self.retention_outbox_days:
            # A delivery row is what stops a re-sent event from emailing twice.
            raise ValueError("retention_deliveries_days must be >= retention_outbox_days")
        return self

    @property
    def is_development(self) -> bool:
        return self.env is not Environment.PRODUCTION


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment on first use."""
    return Settings()
