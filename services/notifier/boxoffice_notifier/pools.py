"""Which channel a notifier worker serves and how many threads it runs: importable without the
tasks, so that the bench's no-op baseline runs with the very same pool size."""

from __future__ import annotations

from boxoffice_messaging.routes import CHANNEL_QUEUES
from boxoffice_settings import Settings


def channel_and_concurrency(settings: Settings, args: list[str]) -> tuple[str, int, list[str]]:
    """The channel to serve (`email`/`sms`, or named by `-Q notifier.sms`), its pool size, and
    the arguments left for Celery.

    Pool size: BOXOFFICE_NOTIFIER_<CHANNEL>_CONCURRENCY if set, else BOXOFFICE_WORKER_CONCURRENCY
    if set (the chart sets it per Deployment), else the channel's default.
    """
    rest = list(args)
    channel = rest.pop(0) if rest and rest[0] in CHANNEL_QUEUES else None
    celery_args: list[str] = []
    while rest:
        arg = rest.pop(0)
        if arg in ("-Q", "--queues") and rest:
            value = rest.pop(0)
        elif arg.startswith(("-Q", "--queues=")):
            value = arg.removeprefix("--queues=").removeprefix("-Q")
        else:
            celery_args.append(arg)
            continue
        named = [c for c, queue in CHANNEL_QUEUES.items() if value.strip() == queue]
        if not named or (channel is not None and named[0] != channel):
            raise SystemExit(f"a notifier worker serves one channel's queue, not {value!r}")
        channel = named[0]
    channel = channel or "email"
    field = f"notifier_{channel}_concurrency"
    explicit = settings.model_fields_set
    if field in explicit or "worker_concurrency" not in explicit:
        concurrency = int(getattr(settings, field))
    else:
        concurrency = settings.worker_concurrency
    return channel, concurrency, celery_args
