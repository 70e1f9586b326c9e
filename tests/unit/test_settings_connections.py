"""DATABASE_URL and REDIS_URL given whole, or built from their parts (the chart's host/port/user
values and a password from its own Secret key)."""

from __future__ import annotations

import os
from unittest import mock

import pytest
from boxoffice_settings import Settings
from pydantic import ValidationError
from redis.connection import parse_url
from sqlalchemy.engine import make_url

PASSWORD = "p@ss:w/rd?#%&ü Zoë"
REDIS = {"REDIS_URL": "redis://redis:6379/0"}
DATABASE = {"DATABASE_URL": "postgresql://db/boxoffice"}


def settings(env: dict[str, str]) -> Settings:
    with mock.patch.dict(os.environ, env, clear=True):
        return Settings()


def test_database_url_is_built_from_parts_with_the_password_escaped() -> None:
    built = settings(
        {
            **REDIS,
            "BOXOFFICE_DATABASE_HOST": "pg.internal",
            "BOXOFFICE_DATABASE_PORT": "6432",
            "BOXOFFICE_DATABASE_USER": "josé",
            "BOXOFFICE_DATABASE_PASSWORD": PASSWORD,
            "BOXOFFICE_DATABASE_NAME": "boxoffice",
        }
    ).database_url
    url = make_url(built)
    assert (url.host, url.port, url.username, url.database) == (
        "pg.internal",
        6432,
        "josé",
        "boxoffice",
    )
    assert url.password == PASSWORD  # survives every character a generated password may hold


def test_a_unix_socket_directory_becomes_libpq_host_parameter() -> None:
    built = settings(
        {
            **REDIS,
            "BOXOFFICE_DATABASE_HOST": "/cloudsql/proj:region:db",
            "BOXOFFICE_DATABASE_USER": "app",
        }
    ).database_url
    url = make_url(built)
    assert url.query == {"host": "/cloudsql/proj:region:db", "port": "5432"}
    assert (url.username, url.database) == ("app", "app")


def test_a_whole_database_url_wins_over_parts() -> None:
    env = {**REDIS, **DATABASE, "BOXOFFICE_DATABASE_HOST": "elsewhere"}
    assert settings(env).database_url == "postgresql://db/boxoffice"


def test_redis_url_is_built_from_parts_with_tls_user_and_database() -> None:
    built = settings(
        {
            **DATABASE,
            "BOXOFFICE_REDIS_HOST": "redis.internal",
            "BOXOFFICE_REDIS_PORT": "6380",
            "BOXOFFICE_REDIS_USERNAME": "boxoffice",
            "BOXOFFICE_REDIS_PASSWORD": PASSWORD,
            "BOXOFFICE_REDIS_DB": "3",
            "BOXOFFICE_REDIS_TLS": "true",
        }
    ).redis_url
    assert built.startswith("rediss://")
    parsed = parse_url(built)  # type: ignore[no-untyped-call]
    assert parsed["host"] == "redis.internal"
    assert (parsed["port"], parsed["db"]) == (6380, 3)
    assert (parsed["username"], parsed["password"]) == ("boxoffice", PASSWORD)


def test_redis_without_a_password_has_no_credentials_in_its_url() -> None:
    built = settings({**DATABASE, "BOXOFFICE_REDIS_HOST": "redis"}).redis_url
    assert built == "redis://redis:6379/0"


@pytest.mark.parametrize(
    ("env", "missing"),
    [(REDIS, "DATABASE_URL"), (DATABASE, "REDIS_URL")],
    ids=["database", "redis"],
)
def test_neither_a_url_nor_a_host_is_refused_naming_both(env: dict[str, str], missing: str) -> None:
    with pytest.raises(ValidationError, match=missing):
        settings(env)
