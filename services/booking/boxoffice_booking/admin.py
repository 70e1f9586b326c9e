"""`boxoffice-admin`: operator commands for queues, dead letters and background tasks.

    boxoffice-admin queues                        queue lengths, outbox backlog, dead letters
    boxoffice-admin purge-queue notifier.email    drop a queue's waiting messages (asks first)
    boxoffice-admin dead-letters list [--service notifier] [--all]
    boxoffice-admin dead-letters inspect ID
    boxoffice-admin dead-letters replay ID [ID ...] | --service notifier
    boxoffice-admin dead-letters purge [--service S] [--older-than-days N] [--yes]
    boxoffice-admin tasks list [--status FAILURE] [--name N] [--queue Q] [--since-minutes M]
    boxoffice-admin tasks stats [--window-minutes M]

Add --json before the command for machine-readable output.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from boxoffice_db.engine import session_scope
from boxoffice_db.models import DeadLetter, TaskStatus
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.dead_letters import (
    count_dead_letters,
    find_dead_letter,
    list_dead_letters,
    purge_dead_letters,
    replay_dead_letter,
)
from boxoffice_messaging.outbox import outbox_backlog
from boxoffice_messaging.queues import QUEUES, purge_queue, queue_lengths, unacked_count
from boxoffice_messaging.redis_client import redis_from_settings
from boxoffice_messaging.task_queries import TaskFilter, list_tasks, task_stats
from boxoffice_messaging.task_status import track_published_tasks
from boxoffice_settings import get_settings
from redis import Redis


class Output:
    """Prints tables for people, or one JSON document with --json."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def emit(self, data: Any, table: Callable[[], None]) -> None:
        if self.as_json:
            print(json.dumps(data, indent=2, default=str))
        else:
            table()


def confirm(prompt: str, expected: str, assume_yes: bool) -> bool:
    """Ask the operator to type `expected`; --yes skips the question (for scripts)."""
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        print("refusing without confirmation: not a terminal; pass --yes", file=sys.stderr)
        return False
    answer = input(f"{prompt}\nType {expected!r} to confirm: ")
    return answer.strip() == expected


def redis_client() -> Redis:
    return redis_from_settings(get_settings(), socket_timeout=5, socket_connect_timeout=5)


def letter_summary(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": str(letter.id),
        "service": letter.service,
        "task_name": letter.task_name,
        "queue": letter.queue,
        "task_id": letter.task_id,
        "event_id": letter.event_id,
        "error_type": letter.error_type,
        "reason": letter.reason,
        "attempts": letter.attempts,
        "created_at": letter.created_at.isoformat(),
        "replayed_at": letter.replayed_at.isoformat() if letter.replayed_at else None,
        "replay_task_id": letter.replay_task_id,
    }


def cmd_queues(out: Output, _: argparse.Namespace) -> int:
    with redis_client() as client:
        lengths = queue_lengths(client)
        unacked = unacked_count(client)
    with session_scope() as session:
        backlog = outbox_backlog(session)
        letters = count_dead_letters(session)
    data = {
        "queues": lengths,
        "unacknowledged": unacked,
        "outbox": {"unsent": backlog.unsent, "oldest_age_seconds": backlog.oldest_age_seconds},
        "dead_letters": letters,
    }

    def table() -> None:
        print(f"{'queue':<20} {'waiting':>8}")
        for queue, length in lengths.items():
            print(f"{queue:<20} {length:>8}")
        print(f"unacknowledged (taken by workers): {unacked}")
        print(f"outbox unsent: {backlog.unsent} (oldest {backlog.oldest_age_seconds:.1f}s)")
        print("dead letters: " + (", ".join(f"{s}={n}" for s, n in letters.items()) or "none"))

    out.emit(data, table)
    return 0


def cmd_purge_queue(out: Output, args: argparse.Namespace) -> int:
    with redis_client() as client:
        waiting = queue_lengths(client, (args.queue,))[args.queue]
        if not confirm(
            f"This drops {waiting} waiting message(s) of {args.queue}; they cannot be recovered.",
            args.queue,
            args.yes,
        ):
            print("not purged", file=sys.stderr)
            return 1
        dropped = purge_queue(client, args.queue)
    out.emit({"queue": args.queue, "purged": dropped}, lambda: print(f"purged {dropped}"))
    return 0


def cmd_dead_letters_list(out: Output, args: argparse.Namespace) -> int:
    with session_scope() as session:
        letters = [
            letter_summary(letter)
            for letter in list_dead_letters(
                session, args.service, include_replayed=args.all, limit=args.limit
            )
        ]

    def table() -> None:
        if not letters:
            print("no dead letters")
        for item in letters:
            replayed = " (replayed)" if item["replayed_at"] else ""
            print(
                f"{item['id'][:8]}  {item['created_at'][:19]}  {item['service']:<9} "
                f"{item['task_name']:<36} x{item['attempts']:<3} {item['reason'][:70]}{replayed}"
            )

    out.emit(letters, table)
    return 0


def cmd_dead_letters_inspect(out: Output, args: argparse.Namespace) -> int:
    with session_scope() as session:
        letter = find_dead_letter(session, args.id)
        if letter is None:
            print(f"no dead letter {args.id!r} (or the prefix is ambiguous)", file=sys.stderr)
            return 1
        data = {**letter_summary(letter), "message": letter.message}
    out.emit(data, lambda: print(json.dumps(data, indent=2, default=str)))
    return 0


def cmd_dead_letters_replay(out: Output, args: argparse.Namespace) -> int:
    app = create_celery_app("boxoffice-admin", get_settings())
    track_published_tasks()
    replayed: list[dict[str, str]] = []
    with session_scope() as session:
        if args.ids:
            letters = []
            for letter_id in args.ids:
                letter = find_dead_letter(session, letter_id)
                if letter is None:
                    print(f"no dead letter {letter_id!r}", file=sys.stderr)
                    return 1
                letters.append(letter)
        elif args.service:
            letters = list_dead_letters(session, args.service, limit=args.limit)
        else:
            print("name dead letters to replay, or --service", file=sys.stderr)
            return 2
        for letter in letters:
            if letter.replayed_at is not None:
                print(f"{letter.id} was already replayed; skipped", file=sys.stderr)
                continue
            task_id = replay_dead_letter(session, app, letter)
            replayed.append({"id": str(letter.id), "task_id": task_id})

    def table() -> None:
        for r in replayed:
            print(f"replayed {r['id'][:8]} as task {r['task_id']}")

    out.emit(replayed, table)
    return 0


def cmd_dead_letters_purge(out: Output, args: argparse.Namespace) -> int:
    older_than = None
    if args.older_than_days is not None:
        older_than = datetime.now(UTC) - timedelta(days=args.older_than_days)
    scope = args.service or "every service"
    if not confirm(f"This deletes the dead letters of {scope}.", "purge", args.yes):
        print("not purged", file=sys.stderr)
        return 1
    with session_scope() as session:
        deleted = purge_dead_letters(session, args.service, older_than=older_than)
    out.emit({"deleted": deleted}, lambda: print(f"deleted {deleted} dead letter(s)"))
    return 0


def cmd_tasks_list(out: Output, args: argparse.Namespace) -> int:
    since = datetime.now(UTC) - timedelta(minutes=args.since_minutes)
    where = TaskFilter(
        status=TaskStatus(args.status) if args.status else None,
        name=args.name,
        queue=args.queue,
        since=since,
    )
    with session_scope() as session:
        rows: list[dict[str, Any]] = [
            {
                "id": t.id,
                "name": t.name,
                "queue": t.queue,
                "status": t.status.value,
                "retries": t.retries,
                "created_at": t.created_at.isoformat(),
                "runtime_seconds": t.runtime_seconds,
                "error": t.error,
            }
            for t in list_tasks(session, where, limit=args.limit)
        ]

    def table() -> None:
        for r in rows:
            runtime = f"{r['runtime_seconds']:.3f}s" if r["runtime_seconds"] is not None else "-"
            print(
                f"{r['id'][:8]}  {r['created_at'][:19]}  {r['status']:<8} {r['name']:<36} "
                f"retries={r['retries']} {runtime} {(r['error'] or '')[:60]}"
            )

    out.emit(rows, table)
    return 0


def cmd_tasks_stats(out: Output, args: argparse.Namespace) -> int:
    with session_scope() as session:
        stats = task_stats(session, timedelta(minutes=args.window_minutes))
    data = {
        "window_seconds": stats.window_seconds,
        "runtime_by_name": [vars(r) for r in stats.runtime_by_name],
        "failures_last_hour": stats.failures_last_hour,
        "by_status": stats.by_status,
    }

    def table() -> None:
        print(f"{'task':<40} {'done':>6} {'avg s':>8} {'p95 s':>8}")
        for r in stats.runtime_by_name:
            print(f"{r.name:<40} {r.completed:>6} {r.avg_seconds:>8.3f} {r.p95_seconds:>8.3f}")
        print("failures in the last hour: " + json.dumps(stats.failures_last_hour))
        print("by status: " + json.dumps(stats.by_status))

    out.emit(data, table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="boxoffice-admin", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("queues", help="queue lengths, outbox backlog, dead letters").set_defaults(
        run=cmd_queues
    )
    purge = commands.add_parser("purge-queue", help="drop a queue's waiting messages")
    purge.add_argument("queue", choices=QUEUES)
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(run=cmd_purge_queue)

    letters = commands.add_parser("dead-letters", help="list, inspect, replay, purge")
    letter_commands = letters.add_subparsers(dest="letters_command", required=True)
    listing = letter_commands.add_parser("list")
    listing.add_argument("--service")
    listing.add_argument("--all", action="store_true", help="include replayed ones")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(run=cmd_dead_letters_list)
    inspect = letter_commands.add_parser("inspect")
    inspect.add_argument("id", help="id or unique prefix")
    inspect.set_defaults(run=cmd_dead_letters_inspect)
    replay = letter_commands.add_parser("replay")
    replay.add_argument("ids", nargs="*", help="ids or unique prefixes")
    replay.add_argument("--service", help="replay every waiting dead letter of a service")
    replay.add_argument("--limit", type=int, default=1000)
    replay.set_defaults(run=cmd_dead_letters_replay)
    purge_letters = letter_commands.add_parser("purge")
    purge_letters.add_argument("--service")
    purge_letters.add_argument("--older-than-days", type=float)
    purge_letters.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge_letters.set_defaults(run=cmd_dead_letters_purge)

    tasks = commands.add_parser("tasks", help="background task status")
    task_commands = tasks.add_subparsers(dest="tasks_command", required=True)
    task_list = task_commands.add_parser("list")
    task_list.add_argument("--status", choices=[s.value for s in TaskStatus])
    task_list.add_argument("--name")
    task_list.add_argument("--queue")
    task_list.add_argument("--since-minutes", type=float, default=60)
    task_list.add_argument("--limit", type=int, default=50)
    task_list.set_defaults(run=cmd_tasks_list)
    stats = task_commands.add_parser("stats")
    stats.add_argument("--window-minutes", type=int, default=60)
    stats.set_defaults(run=cmd_tasks_stats)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    code = args.run(Output(args.json), args)
    sys.stdout.flush()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
