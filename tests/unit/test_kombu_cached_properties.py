"""kombu's cached properties, as `kombu_fixes.install` leaves them: a cached value is read
without the property's lock (one lock for every instance, which a worker's threads queued
on for every message), and a value not cached yet is still computed under it, once."""

from __future__ import annotations

import threading

from boxoffice_messaging import kombu_fixes
from kombu.transport import redis as kombu_redis
from kombu.utils.objects import cached_property


class Channel:
    computed = 0

    @cached_property
    def client(self) -> str:
        Channel.computed += 1
        return "клиент-ü"


def read_in_thread(channel: Channel, timeout: float) -> tuple[threading.Thread, dict[str, str]]:
    seen: dict[str, str] = {}
    reader = threading.Thread(target=lambda: seen.setdefault("value", channel.client))
    reader.start()
    reader.join(timeout)
    return reader, seen


def test_a_cached_value_is_read_without_the_lock_and_a_missing_one_is_computed_under_it() -> None:
    kombu_fixes.install()
    # The Redis channel's client is such a property: what every message reads.
    assert isinstance(vars(kombu_redis.Channel)["client"], cached_property)
    Channel.computed = 0
    cached = Channel()
    assert cached.client == "клиент-ü"
    lock = vars(Channel)["client"].lock
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(5)
    try:
        reader, seen = read_in_thread(cached, 5)
        assert not reader.is_alive(), "a cached read waited for the property's lock"
        assert seen == {"value": "клиент-ü"}
        fresh = Channel()
        waiting, pending = read_in_thread(fresh, 0.3)
        assert waiting.is_alive(), "a missing value was computed without the lock"
        assert pending == {}
    finally:
        release.set()
        holder.join(5)
    waiting.join(5)
    assert pending == {"value": "клиент-ü"}
    assert Channel.computed == 2
    # Setting and deleting still go through kombu's own code.
    cached.client = "другой"
    assert cached.client == "другой"
    del cached.client
    assert cached.client == "клиент-ü"
    assert Channel.computed == 3
