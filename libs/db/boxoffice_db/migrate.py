"""Apply the Alembic migrations; `python -m boxoffice_db.migrate` is the migration Job's command."""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

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


def main() -> None:
    from boxoffice_settings import get_settings

    upgrade_to_head(get_settings().database_url)
    sys.stdout.write("migrations applied\n")


if __name__ == "__main__":
    main()
