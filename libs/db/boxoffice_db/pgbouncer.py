"""PgBouncer's auth file for the chart's PgBouncer: `python -m boxoffice_db.pgbouncer PATH`.

The password lives in a Secret (often the operator's own, under their key), so the chart cannot
write PgBouncer's userlist at render time; the PgBouncer pod's init container runs this with the
same BOXOFFICE_DATABASE_USER / BOXOFFICE_DATABASE_PASSWORD the app gets, onto an in-memory volume.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def userlist_line(user: str, password: str) -> str:
    """One auth_file line: both fields in double quotes, a double quote in them doubled."""

    def quoted(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    return f"{quoted(user)} {quoted(password)}\n"


def write_userlist(path: Path, user: str, password: str) -> None:
    """Write the file readable by its owner only (PgBouncer runs as the same user)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(userlist_line(user, password))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m boxoffice_db.pgbouncer")
    parser.add_argument("path", type=Path, help="the auth_file to write")
    args = parser.parse_args(argv)
    user = os.environ.get("BOXOFFICE_DATABASE_USER", "")
    password = os.environ.get("BOXOFFICE_DATABASE_PASSWORD", "")
    if not user or not password:
        sys.stderr.write("BOXOFFICE_DATABASE_USER and BOXOFFICE_DATABASE_PASSWORD must be set\n")
        return 1
    write_userlist(args.path, user, password)
    sys.stdout.write(f"wrote {args.path} for {user}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
