"""`boxoffice-booking`: operator commands (migrate, seed demo data, API keys)."""

from __future__ import annotations

import argparse
import json
import sys
import uuid

from boxoffice_db.engine import session_scope
from boxoffice_db.migrate import upgrade_to_head
from boxoffice_settings import get_settings

from boxoffice_booking.auth import SCOPES, create_api_key, list_api_keys, revoke_api_key
from boxoffice_booking.seed import seed_demo


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="boxoffice-booking")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply database migrations")
    commands.add_parser("seed", help="create the demo venue and showtime; prints its id")

    def add_create(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str) -> None:
        create = sub.add_parser(name, help="create an API key and print it (shown only once)")
        create.add_argument("--name", required=True)
        create.add_argument("--scope", action="append", choices=SCOPES, required=True)
        create.add_argument(
            "--client",
            help="the client (tenant) the key belongs to; its keys share its bookings "
            "(default: a client named like the key)",
        )

    add_create(commands, "create-api-key")
    keys = commands.add_parser("api-keys", help="create, list and revoke API keys")
    key_commands = keys.add_subparsers(dest="key_command", required=True)
    add_create(key_commands, "create")
    listing = key_commands.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id", type=uuid.UUID)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command
    if command == "api-keys":
        command = f"api-keys {args.key_command}"

    if command == "migrate":
        upgrade_to_head(get_settings().database_url)
        print("migrations applied")
    elif command == "seed":
        with session_scope() as session:
            print(seed_demo(session))
    elif command in ("create-api-key", "api-keys create"):
        with session_scope() as session:
            print(create_api_key(session, args.name, sorted(set(args.scope)), client=args.client))
    elif command == "api-keys list":
        with session_scope() as session:
            keys = list_api_keys(session, include_revoked=args.all)
        for key in keys:
            if args.json:
                print(
                    json.dumps(
                        {
                            "id": str(key.id),
                            "name": key.name,
                            "client": key.client,
                            "scopes": key.scopes,
                            "created_at": key.created_at.isoformat(),
                            "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
                            "last_used_at": (
                                key.last_used_at.isoformat() if key.last_used_at else None
                            ),
                        }
                    )
                )
            else:
                state = "revoked" if key.revoked_at else "active"
                print(
                    f"{key.id}  {state:8}  {','.join(key.scopes):40}  {key.client:20}  {key.name}"
                )
    elif command == "api-keys revoke":
        with session_scope() as session:
            revoked = revoke_api_key(session, args.key_id)
        if not revoked:
            print(f"no active API key {args.key_id}", file=sys.stderr)
            return 1
        print(f"revoked {args.key_id}")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
