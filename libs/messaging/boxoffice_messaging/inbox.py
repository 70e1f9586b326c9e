"""Consumer idempotency's fast record: a "sent" mark in Redis per (event id, channel).

The delivery row in PostgreSQL is the record (boxoffice_notifier.deliveries.deliver); the mark
covers the instant between a provider's acceptance and that row's commit.
"""

from __future__ import annotations

import logging
import uuid
from functools import lru_cache

from boxoffice_settings import get_settings
from redis import Redis
from redis.exceptions import RedisError

from boxoffice_messaging.redis_client import redis_from_settings

log = logging.getLogger(__name__)


class SentMarks:
    """A second, fast record of "sent" in Redis, written the instant the side effect is done.

    The delivery row in PostgreSQL is the record; but it commits a round trip after the
    SMTP server accepted the email, and not at all while PostgreSQL restarts. A worker
    killed in that gap would let a redelivery send again. The mark, one SET right after
    `send`, narrows the gap to well under a millisecond and covers a PostgreSQL outage.
    Best effort: if Redis is unreachable the delivery row alone decides.
    """

    TTL_SECONDS = 7 * 24 * 3600

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    @staticmethod
    def key(event_id: uuid.UUID, channel: str) -> str:
        return f"boxoffice:sent:{channel}:{event_id}"

    def is_marked(self, event_id: uuid.UUID, channel: str) -> bool:
        try:
            return bool(self.redis.exists(self.key(event_id, channel)))
        except RedisError as exc:
            log.warning("sent marks unavailable: %s", exc)
            return False

    def mark(self, event_id: uuid.UUID, channel: str) -> None:
        try:
            self.redis.set(self.key(event_id, channel), "1", ex=self.TTL_SECONDS)
        except RedisError as exc:
            log.warning("could not mark as sent in Redis: %s", exc)


@lru_cache(maxsize=1)
def default_marks() -> SentMarks:
    """Marks on the broker's Redis, with short timeouts so an outage costs little."""
    return SentMarks(
        redis_from_settings(get_settings(), socket_timeout=1, socket_connect_timeout=1)
    )
