"""The app's two database paths through a real PgBouncer in transaction pooling, configured by
the pgbouncer.ini the chart renders: prepared statements off, many clients on few server
connections.

PgBouncer reads the auth file `python -m boxoffice_db.pgbouncer` writes (the chart's init
container), with a password that needs quoting.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from boxoffice_db.aio import make_async_pool
from boxoffice_db.engine import make_engine
from boxoffice_devstack.servers import free_port
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.helm.chart import name, render
from tests.support.processes import wait_until
from tests.support.stack import Stack
from tests.support.unix_forwarder import UnixForwarder

PASSWORD = 'pa"ss wörd'
CLIENTS = 8


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )
    assert found, "install the Debian package `pgbouncer` (`make pgbouncer`, .ci/run does)"
    return found


def chart_pgbouncer_ini(database: str, server_port: int, port: int, auth: Path) -> str:
    """The pgbouncer.ini the chart renders, with this machine's addresses and paths."""
    values = {
        "postgresql": {
            "enabled": True,
            "auth": {"username": "postgres", "database": database, "password": PASSWORD},
        },
        "redis": {"enabled": True},
        # Two server connections for eight clients: transactions move between them.
        "pgbouncer": {"enabled": True, "port": port, "poolSize": 2},
    }
    ini: str = render(values).get("ConfigMap", name("pgbouncer"))["data"]["pgbouncer.ini"]
    server = f"host={name('postgresql')} port=5432"
    assert server in ini
    replaced = {
        server: f"host=127.0.0.1 port={server_port}",
        "listen_addr = 0.0.0.0": "listen_addr = 127.0.0.1",
        "unix_socket_dir = /tmp": "unix_socket_dir =",
        "auth_file = /etc/pgbouncer-auth/users.txt": f"auth_file = {auth}",
    }
    for chart_line, here in replaced.items():
        assert chart_line in ini, chart_line
        ini = ini.replace(chart_line, here)
    return ini


@pytest.fixture(scope="module")
def pgbouncer_url(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = pgbouncer_binary()
    database = f"pgb_{uuid.uuid4().hex[:10]}"
    stack.postgres.create_database(database)
    forwarder = UnixForwarder(str(Path(stack.postgres.socket_dir) / ".s.PGSQL.5432")).start()
    work = tmp_path_factory.mktemp("pgbouncer")
    work.chmod(0o755)
    env = {
        **os.environ,
        "BOXOFFICE_DATABASE_USER": "postgres",
        "BOXOFFICE_DATABASE_PASSWORD": PASSWORD,
    }
    auth = work / "users.txt"
    subprocess.run([sys.executable, "-m", "boxoffice_db.pgbouncer", str(auth)], env=env, check=True)
    port = free_port()
    ini = work / "pgbouncer.ini"
    ini.write_text(chart_pgbouncer_ini(database, forwarder.port, port, auth))
    argv = [binary, str(ini)]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        nobody = pwd.getpwnam("nobody")
        for path in (auth, ini):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        argv = [binary, "-u", "nobody", str(ini)]
    log = (work / "pgbouncer.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"postgresql://postgres:pa%22ss%20w%C3%B6rd@127.0.0.1:{port}/{database}"
    try:
        wait_until(lambda: b"process up" in (work / "pgbouncer.log").read_bytes(), 30, "PgBouncer")
        yield url
    finally:
        process.terminate()
        process.wait(10)
        log.close()
        forwarder.stop()


def hammer_engine(url: str, prepared_statements: bool) -> list[str]:
    """CLIENTS threads, each 40 one-statement transactions; the errors they saw."""
    engine = make_engine(
        url, "pgbouncer-test", pool_size=CLIENTS, prepared_statements=prepared_statements
    )
    errors: list[str] = []

    def client(n: int) -> None:
        for i in range(40):
            try:
                with engine.begin() as conn:
                    value = conn.execute(
                        text("SELECT CAST(:n AS int) + CAST(:i AS int)"), {"n": n, "i": i}
                    ).scalar()
                    assert value == n + i
            except DBAPIError as exc:
                errors.append(str(exc.orig))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    engine.dispose()
    return errors


def test_the_engine_without_prepared_statements_works_through_transaction_pooling(
    pgbouncer_url: str,
) -> None:
    assert hammer_engine(pgbouncer_url, prepared_statements=False) == []


def test_prepared_statements_break_under_transaction_pooling(pgbouncer_url: str) -> None:
    """Why the chart turns them off: psycopg prepares a statement run 5 times on one server
    connection, and the next transaction finds another one (PgBouncer 1.18 does not track them)."""
    errors = hammer_engine(pgbouncer_url, prepared_statements=True)
    assert errors, "expected prepared-statement errors through transaction pooling"
    assert any("prepared statement" in e for e in errors), errors[:3]


def test_the_async_pool_without_prepared_statements_works_through_transaction_pooling(
    pgbouncer_url: str,
) -> None:
    async def run() -> None:
        pool = make_async_pool(
            pgbouncer_url, "pgbouncer-test-async", CLIENTS, prepared_statements=False
        )
        await pool.open()
        try:

            async def client(n: int) -> None:
                for i in range(40):
                    async with pool.connection() as conn:
                        cursor = await conn.execute("SELECT %s::int + %s::int", (n, i))
                        row = await cursor.fetchone()
                        assert row is not None
                        assert row[0] == n + i

            await asyncio.gather(*(client(n) for n in range(CLIENTS)))
        finally:
            await pool.close()

    asyncio.run(run())
