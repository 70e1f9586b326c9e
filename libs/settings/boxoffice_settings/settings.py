"""One pydantic-settings `Settings`, built once per process from environment variables."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Literal
from urllib.parse import quote

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


DEFAULT_TEST_WEBHOOK_SECRET = "test-webhook-secret"  # noqa: S105 (development only)


class Settings(BaseSettings):
    """Configuration shared by all services; each service reads the part it needs."""

    model_config = SettingsConfigDict(env_prefix="BOXOFFICE_", extra="ignore")

    env: Environment = Environment.PRODUCTION
    service_name: str = "boxoffice"

    # Each connection is a whole URL, or its parts (the password typically from its own Secret
    # key, as operators' Secrets hold it); the URL is then built here, the password escaped.
    database_url: str = Field(
        default="",
        validation_alias=AliasChoices("DATABASE_URL", "BOXOFFICE_DATABASE_URL"),
    )
    database_host: str | None = None
    database_port: int = Field(default=5432, ge=1, le=65535)
    database_user: str | None = None
    database_password: SecretStr | None = None
    database_name: str | None = None
    # Behind PgBouncer in transaction mode: no server-side prepared statements (a prepared
    # statement lives on one server connection, the next transaction may get another).
    database_prepared_statements: bool = True
    redis_url: str = Field(
        default="", validation_alias=AliasChoices("REDIS_URL", "BOXOFFICE_REDIS_URL")
    )
    redis_host: str | None = None
    redis_port: int = Field(default=6379, ge=1, le=65535)
    redis_username: str | None = None
    redis_password: SecretStr | None = None
    redis_db: int = Field(default=0, ge=0)
    redis_tls: bool = False
    # The master's name when REDIS_URL is a sentinel:// URL (ignored otherwise).
    redis_sentinel_master: str = Field(default="mymaster", min_length=1)
    # Connections in each SQLAlchemy pool (as many again in overflow); the API also runs at
    # most this many sync handlers at once (boxoffice_booking.app.lifespan).
    db_pool_size: int = Field(default=10, ge=1)

    # Holds
    hold_ttl_seconds: int = Field(default=600, ge=1)
    max_seats_per_hold: int = Field(default=10, ge=1)
    # Seat hoarding: most PENDING, unexpired holds one client may have at once (0 = no limit,
    # the default: the limit serialises one client's holds, and a storefront that holds for
    # every buyer is one client; set it where partners hold through clients of their own).
    max_active_holds_per_client: int = Field(default=0, ge=0)

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
    # Limits applied before any work: request bodies are refused (413) past these sizes, by
    # Content-Length and while they stream; a provider's webhook is small.
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    webhook_max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # A body that stops arriving for this long is refused (408) and its connection closed, so a
    # slow sender cannot hold a connection and its buffer for as long as it likes.
    api_body_read_timeout_seconds: float = Field(default=10.0, gt=0)
    # Requests without an API key this process knows to be good (none, unknown, revoked)
    # allowed per client address per window, in Redis for every replica; 0 turns it off.
    auth_failure_limit: int = Field(default=60, ge=0)
    auth_failure_window_seconds: int = Field(default=60, ge=1)
    # Unknown key hashes remembered per process (LRU); known-good keys are kept apart.
    negative_key_cache_size: int = Field(default=10_000, ge=1)
    # Proxies (addresses or CIDR networks, comma-separated) whose X-Forwarded-For is believed:
    # the client address is the nearest hop that is not one of them. Empty: the peer address.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Payments: `test` is on outside production (or when enabled); `razorpay` when keyed.
    test_payments_enabled: bool = False
    test_webhook_secret: SecretStr = SecretStr(DEFAULT_TEST_WEBHOOK_SECRET)
    razorpay_key_id: str | None = None
    razorpay_key_secret: SecretStr | None = None
    razorpay_webhook_secret: SecretStr | None = None
    razorpay_base_url: str = "https://api.razorpay.com"
    payment_timeout_seconds: float = Field(default=10.0, gt=0)

    # Outbox relay
    relay_batch_size: int = Field(default=200, ge=1)
    # The relay's sleep after a batch that did not fill it: an idle outbox is looked at this
    # often, one short transaction each. 25 ms against 50 ms halved the relay's hop at about
    # 0.2 ms more relay CPU per booking (docs/benchmarks.md, twelfth session).
    relay_poll_interval_seconds: float = Field(default=0.025, gt=0)
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
    # Refunds still pending (the provider failed or a process died after asking) are asked for
    # again this often, with the same idempotency key, until they settle.
    schedule_reconcile_refunds: str = "60"
    # A refund is asked again only once it has been pending this long, so reconciliation does
    # not race the call the process that owed it makes right after its commit.
    refund_retry_after_seconds: float = Field(default=30.0, gt=0)
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
    # Celery task events (task-sent, -received, -started, -succeeded...) are for Flower; off,
    # a worker spares a Redis publish per task state (8 % of the notifier's CPU samples in a
    # profile under `make bench`). The chart turns them on with Flower; `make run FLOWER=1` too.
    celery_task_events: bool = False

    # Email
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    # Whether the SMTP server offers SMTPUTF8 (RFC 6531), needed for a non-ASCII mailbox name
    # such as `josé@…` (domains always go out in IDNA form). False: the API refuses such an
    # address with a 422, rather than accept a booking whose emails could never be sent.
    smtp_smtputf8: bool = True
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
    # A pod sends at most about threads / SMTP round trip emails/s; threads beyond that cost
    # CPU in GIL hand-offs: against a relay answering in about a millisecond, 8 threads used
    # 9 % less CPU per email than 32 (three bench pairs, docs/benchmarks.md, ninth session),
    # but through a relay 100 ms away they fell behind 100 emails/s where 32 kept up (tenth).
    notifier_email_concurrency: int = Field(default=32, ge=1)
    notifier_sms_concurrency: int = Field(default=8, ge=1)
    smtp_rate_per_second: float = Field(default=20.0, gt=0)
    sms_rate_per_second: float = Field(default=5.0, gt=0)
    # Message retries (the notifier's RetryPolicy): exponential backoff with jitter, capped well
    # below the visibility timeout (a retry is a countdown message, which Redis would redeliver
    # if it outlived the timeout).
    notifier_retry_backoff_seconds: float = Field(default=5.0, gt=0)
    notifier_retry_backoff_max_seconds: float = Field(default=300.0, gt=0)
    notifier_max_retries: int = Field(default=20, ge=0)
    reminder_window_seconds: int = Field(default=7200, ge=60)
    # How often the scheduler looks for due reminders; each booking is reminded once anyway.
    reminder_interval_seconds: float = Field(default=300.0, gt=0)

    # Observability: a port of 0 disables a worker's metrics server.
    metrics_port: int = Field(default=0, ge=0, le=65535)
    log_level: str = "INFO"

    @field_validator("report_recipients", "trusted_proxies", mode="before")
    @classmethod
    def _split_comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad entry
        return value

    @model_validator(mode="after")
    def _connection_urls_from_parts(self) -> Settings:
        if not self.database_url:
            if not self.database_host:
                raise ValueError("set DATABASE_URL, or BOXOFFICE_DATABASE_HOST and its parts")
            name = quote(self.database_name or self.database_user or "postgres", safe="")
            if self.database_host.startswith("/"):
                # A Unix socket directory (a proxy sidecar's, say): libpq's host parameter.
                host = quote(self.database_host, safe="/")
                self.database_url = _url(
                    "postgresql",
                    self.database_user,
                    self.database_password,
                    "",
                    None,
                    f"{name}?host={host}&port={self.database_port}",
                )
            else:
                self.database_url = _url(
                    "postgresql",
                    self.database_user,
                    self.database_password,
                    self.database_host,
                    self.database_port,
                    name,
                )
        if not self.redis_url:
            if not self.redis_host:
                raise ValueError("set REDIS_URL, or BOXOFFICE_REDIS_HOST and its parts")
            self.redis_url = _url(
                "rediss" if self.redis_tls else "redis",
                self.redis_username,
                self.redis_password,
                self.redis_host,
                self.redis_port,
                str(self.redis_db),
            )
        return self

    @model_validator(mode="after")
    def _no_development_secrets_in_production(self) -> Settings:
        if self.env is Environment.PRODUCTION and self.bootstrap_api_key is not None:
            key = self.bootstrap_api_key.get_secret_value()
            if len(key) < 32:
                raise ValueError("BOXOFFICE_BOOTSTRAP_API_KEY must be at least 32 characters")
        if (
            self.env is Environment.PRODUCTION
            and self.test_payments_enabled
            and self.test_webhook_secret.get_secret_value() == DEFAULT_TEST_WEBHOOK_SECRET
        ):
            # Anyone could sign a `payment.succeeded` for the test provider with the default.
            raise ValueError(
                "BOXOFFICE_TEST_PAYMENTS_ENABLED in production needs its own "
                "BOXOFFICE_TEST_WEBHOOK_SECRET (the default is public)"
            )
        return self

    @model_validator(mode="after")
    def _retries_fit_in_the_visibility_timeout(self) -> Settings:
        if self.notifier_retry_backoff_max_seconds * 2 > self.celery_visibility_timeout_seconds:
            raise ValueError(
                "BOXOFFICE_NOTIFIER_RETRY_BACKOFF_MAX_SECONDS must be at most half of "
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


def _url(
    scheme: str,
    user: str | None,
    password: SecretStr | None,
    host: str,
    port: int | None,
    path: str,
) -> str:
    """scheme://user:password@host:port/path with the user and password percent-escaped."""
    auth = quote(user or "", safe="")
    if password is not None:
        auth += ":" + quote(password.get_secret_value(), safe="")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{scheme}://{auth + '@' if auth else ''}{netloc}/{path}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment on first use."""
    return Settings()
