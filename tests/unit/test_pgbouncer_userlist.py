"""The PgBouncer auth file the chart's init container writes from the database Secret."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from boxoffice_db.pgbouncer import userlist_line


def parse_userlist_line(line: str) -> list[str]:
    """PgBouncer's reading of a line: quoted fields, a doubled quote is one quote."""
    fields, i = [], 0
    while i < len(line):
        if line[i] == '"':
            value, i = "", i + 1
            while True:
                if line[i] == '"' and line[i + 1 : i + 2] == '"':
                    value, i = value + '"', i + 2
                elif line[i] == '"':
                    i += 1
                    break
                else:
                    value, i = value + line[i], i + 1
            fields.append(value)
        else:
            i += 1
    return fields


def test_quotes_in_a_password_are_doubled_and_read_back_unchanged() -> None:
    password = 'pa"ss w@rd"Zoë'
    line = userlist_line("josé", password)
    assert line == '"josé" "pa""ss w@rd""Zoë"\n'
    assert parse_userlist_line(line) == ["josé", password]


def test_the_command_writes_an_owner_only_file_from_the_app_env(tmp_path: Path) -> None:
    path = tmp_path / "auth" / "users.txt"
    env = {
        **os.environ,
        "BOXOFFICE_DATABASE_USER": "boxoffice",
        "BOXOFFICE_DATABASE_PASSWORD": 's3cr"t',
    }
    subprocess.run([sys.executable, "-m", "boxoffice_db.pgbouncer", str(path)], env=env, check=True)
    assert parse_userlist_line(path.read_text()) == ["boxoffice", 's3cr"t']
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_command_refuses_to_write_without_a_password(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_DATABASE_")}
    env["BOXOFFICE_DATABASE_USER"] = "boxoffice"
    done = subprocess.run(
        [sys.executable, "-m", "boxoffice_db.pgbouncer", str(tmp_path / "u.txt")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert not (tmp_path / "u.txt").exists()
