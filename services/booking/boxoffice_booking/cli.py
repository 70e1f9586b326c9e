"""`boxoffice-booking`: operator commands (migrate, seed demo data, API keys)."""

from __future__ import annotations

import argparse
import sys

from boxoffice_db.engine import session_scope
from boxoffice_db.migrate import upgrade_to_head
from boxoffice_settings import get_settings

from boxoffice_booking.auth import SCOPES, create_api_key
from boxoffice_booking.seed import seed_demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="boxoffice-booking")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply database migrations")
    commands.add_parser("seed", help="create the demo venue and showtime; prints its id")
    key = commands.add_parser("create-api-key", help="create an API key and print it once")
    key.add_argument("--name", required=True)
    key.add_argument("--scope", action="append", choices=SCOPES, required=True)
    args = parser.parse_args(argv)

    if args.command == "migrate":
        upgrade_to_head(get_settings().database_url)
        print("migrations applied")
    elif args.command == "seed":
        with session_scope() as session:
            print(seed_demo(session))
    elif args.command == "create-api-key":
        with session_scope() as session:
            print(create_api_key(session, args.name, args.scope))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
