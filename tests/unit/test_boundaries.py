"""Where SQL may be written (repositories and the database library, never routes, services' rules,
middleware or telemetry), and that services never import each other."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Importing SQLAlchemy's statement builders (or `text`) is writing SQL.
SQL_IMPORT = re.compile(
    r"^from sqlalchemy(?:\.dialects\.postgresql)? import (?:\(\n(?:\s+\w+,\n)+\)|.*)", re.M
)
BUILDERS = {"text", "select", "insert", "update", "delete"}
# The modules that write SQL: the database library, the repositories, and the messaging
# library's stores (outbox, dead letters, task status), which are its repositories.
REPOSITORIES = {
    "libs/db/boxoffice_db/engine.py",
    "libs/db/boxoffice_db/models/bookings.py",
    "libs/db/boxoffice_db/models/catalog.py",
    "libs/db/boxoffice_db/models/clients.py",
    "libs/db/boxoffice_db/models/messaging.py",
    "libs/bookings/boxoffice_bookings/repository.py",
    "libs/bookings/boxoffice_bookings/seat_repository.py",
    "services/booking/boxoffice_booking/catalog_repository.py",
    "services/booking/boxoffice_booking/api_key_repository.py",
    "services/notifier/boxoffice_notifier/repository.py",
    "services/reaper/boxoffice_reaper/retention_repository.py",
    "libs/messaging/boxoffice_messaging/dead_letters.py",
    "libs/messaging/boxoffice_messaging/outbox.py",
    "libs/messaging/boxoffice_messaging/redelivery.py",
    "libs/messaging/boxoffice_messaging/status_writer.py",
    "libs/messaging/boxoffice_messaging/task_queries.py",
    "libs/messaging/boxoffice_messaging/task_status.py",
}


def sql_builders_imported(path: Path) -> set[str]:
    names: set[str] = set()
    for statement in SQL_IMPORT.findall(path.read_text()):
        imported = statement.split(" import ", 1)[1]
        names |= {n.strip(" (),\n").split(" as ")[0] for n in imported.split(",")} & BUILDERS
    return names


def test_only_repositories_and_the_database_library_write_sql() -> None:
    writing_sql = {
        str(path.relative_to(ROOT))
        for top in ("libs", "services", "tools")
        for path in (ROOT / top).rglob("*.py")
        if "migrations" not in path.parts and sql_builders_imported(path)
    }
    outside = sorted(writing_sql - REPOSITORIES)
    assert outside == [], "put these queries in a repository module of their domain"


def test_the_check_sees_a_multi_line_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from sqlalchemy import (\n    func,\n    select,\n)\n")
    assert sql_builders_imported(module) == {"select"}


def imported_packages(path: Path) -> set[str]:
    """Top-level packages a module imports (`import x.y`, `from x.y import z`)."""
    found = re.findall(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", path.read_text(), re.M)
    return set(found)


def test_services_never_import_each_other() -> None:
    """Services talk through messages and the database only; what they share lives in libs/."""
    services = {d.name: f"boxoffice_{d.name}" for d in (ROOT / "services").iterdir() if d.is_dir()}
    assert set(services) == {"booking", "notifier", "reaper", "scheduler"}
    crossing = [
        f"{path.relative_to(ROOT)} imports {other}"
        for name, package in services.items()
        for path in (ROOT / "services" / name / package).rglob("*.py")
        for other in imported_packages(path) & (set(services.values()) - {package})
    ]
    assert not crossing, crossing
