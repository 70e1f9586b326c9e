"""Reading what the scheduler sent: the Celery messages waiting in a Redis queue."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from redis import Redis


@dataclass(frozen=True)
class SentTick:
    task: str
    task_id: str
    job: str
    scheduled_for_ms: int
    fencing_token: int


def sent_ticks(redis: Redis, queue: str) -> list[SentTick]:
    """Every message in `queue` (kombu's Redis transport keeps a queue as a list), oldest first."""
    raw: list[bytes] = redis.lrange(queue, 0, -1)  # type: ignore[assignment]
    ticks = []
    for item in reversed(raw):  # kombu LPUSHes, so the oldest is last
        headers = json.loads(item)["headers"]
        scheduled = datetime.fromisoformat(headers["boxoffice_scheduled_for"])
        ticks.append(
            SentTick(
                task=headers["task"],
                task_id=headers["id"],
                job=headers["boxoffice_job"],
                scheduled_for_ms=round(scheduled.timestamp() * 1000),
                fencing_token=int(headers["boxoffice_fencing_token"]),
            )
        )
    return ticks
