"""Which channel a notifier worker serves and how many threads it runs."""

from __future__ import annotations

from typing import Any

import pytest
from boxoffice_notifier.pools import channel_and_concurrency
from boxoffice_settings import Settings


def settings(**values: Any) -> Settings:
    return Settings(database_url="postgresql://unused", redis_url="redis://unused", **values)


@pytest.mark.parametrize(
    ("args", "channel", "rest"),
    [
        ([], "email", []),
        (["sms"], "sms", []),
        (["email", "--loglevel=DEBUG"], "email", ["--loglevel=DEBUG"]),
        (["-Q", "notifier.sms"], "sms", []),  # how the Helm chart starts it
        (["--queues=notifier.email", "-c", "3"], "email", ["-c", "3"]),
    ],
)
def test_the_channel_comes_from_the_argument_or_the_queue(
    args: list[str], channel: str, rest: list[str]
) -> None:
    assert channel_and_concurrency(settings(), args)[::2] == (channel, rest)


@pytest.mark.parametrize("args", [["-Q", "reaper"], ["sms", "-Q", "notifier.email"]])
def test_a_worker_never_serves_another_queue(args: list[str]) -> None:
    with pytest.raises(SystemExit):
        channel_and_concurrency(settings(), args)


def test_pool_size_is_the_channel_setting_then_the_worker_setting_then_the_default() -> None:
    assert channel_and_concurrency(settings(), ["email"])[1] == 32
    assert channel_and_concurrency(settings(), ["sms"])[1] == 8
    assert channel_and_concurrency(settings(worker_concurrency=6), ["sms"])[1] == 6
    both = settings(worker_concurrency=6, notifier_sms_concurrency=3)
    assert channel_and_concurrency(both, ["sms"])[1] == 3
