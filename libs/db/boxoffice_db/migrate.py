"""Apply the Alembic migrations, or wait until someone has.

`python -m boxoffice_db.migrate` is the migration Job's command; `python -m boxoffice_db.migrate
--wait` is the chart's `wait-for-migrations` init container: it exits 0 once the database's
schema is at this image's head revision, and 1 when `--timeout` passes first.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool
from sqlalchemy.exc import SQLAlchemyError

from boxoffice_db.engine import sqlalchemy_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    """An Alembic config for the packaged migrations against `database_url`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_to_head(database_url: str) -> None:
    """Bring the schema at `database_url` to the newest revision."""
    command.upgrade(alembic_config(database_url), "head")


def head_revisions() -> set[str]:
    """The head revision(s) of the migrations packaged with this code."""
    script = ScriptDirectory.from_config(alembic_config("postgresql://unused"))
    return set(script.get_heads())


def current_revisions(database_url: str) -> set[str]:
    """The revision(s) the database's schema is at (empty before the first migration)."""
    engine = create_engine(
        sqlalchemy_url(database_url),
        poolclass=pool.NullPool,
        connect_args={"connect_timeout": 5, "prepare_threshold": None},
    )
    try:
        with engine.connect() as connection:
            return set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()


def wait_for_head(database_url: str, timeout: float, interval: float = 2.0) -> bool:
    """Poll until the schema is at head; False when `timeout` seconds pass first.

    An unreachable database counts as not there yet: the pod may start before PostgreSQL or
    PgBouncer answers, and the migration Job may still be running.
    """
    heads = head_revisions()
    deadline = time.monotonic() + timeout
    while True:
        try:
            current = current_revisions(database_url)
            state = f"at {', '.join(sorted(current)) or 'no revision'}"
        except SQLAlchemyError as exc:
            current, state = set(), f"not reachable ({type(exc.__cause__ or exc).__name__})"
        if current == heads:
            return True
        if time.monotonic() >= deadline:
            sys.stderr.write(f"schema {state}, not at {', '.join(sorted(heads))}; giving up\n")
            return False
        sys.stderr.write(
            f"waiting for migrations: schema {state}, head {', '.join(sorted(heads))}\n"
        )
        time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m boxoffice_db.migrate")
    parser.add_argument(
        "--wait", action="store_true", help="do not migrate: wait until the schema is at head"
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds --wait waits (default 600)"
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between --wait's checks"
    )
    args = parser.parse_args(argv)

    from boxoffice_settings import get_settings

    database_url = get_settings().database_url
    if args.wait:
        if not wait_for_head(database_url, args.timeout, args.interval):
            return 1
        sys.stdout.write("schema at head\n")
        return 0
    upgrade_to_head(database_url)
    sys.stdout.write("migrations applied\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
