"""`boxoffice-dev`: run the whole system locally (`make run`)."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from boxoffice_devstack import sms_sink, smtp_sink


def _local_key(var: Path) -> str:
    """The development API key: BOXOFFICE_BOOTSTRAP_API_KEY, else one kept under var/."""
    given = os.environ.get("BOXOFFICE_BOOTSTRAP_API_KEY")
    if given:
        return given
    path = var / "dev-api-key"
    if not path.exists():
        path.write_text("bo_dev_" + secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


def run(var: Path, flower: bool = False) -> int:
    from honcho.manager import Manager

    from boxoffice_devstack.servers import Postgres, RedisServer, free_port

    var = var.resolve()
    var.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("BOXOFFICE_ENV", "development")

    redis: RedisServer | None = None
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = Postgres(var / "postgres").create_database("boxoffice")
    if not env.get("REDIS_URL"):
        redis = RedisServer(var / "redis").start()
        env["REDIS_URL"] = redis.url

    api_key = _local_key(var)
    env["BOXOFFICE_BOOTSTRAP_API_KEY"] = api_key
    smtp_port = free_port()
    sms_port = free_port()
    env.update(
        BOXOFFICE_SMTP_HOST="127.0.0.1",
        BOXOFFICE_SMTP_PORT=str(smtp_port),
        BOXOFFICE_SMS_GATEWAY_URL=f"http://127.0.0.1:{sms_port}/Messages.json",
        BOXOFFICE_SMS_GATEWAY_TOKEN="dev",  # noqa: S106 - the local sink checks no token
    )
    env.setdefault("BOXOFFICE_REPORT_RECIPIENTS", "operators@boxoffice.invalid")
    os.environ.update(env)

    # Imported late: settings are read from the environment assembled above.
    from boxoffice_booking.cli import main as booking_cli

    booking_cli(["migrate"])
    from boxoffice_booking.seed import seed_demo
    from boxoffice_db.engine import session_scope

    with session_scope() as session:
        showtime_id = seed_demo(session)
    (var / "demo-showtime").write_text(f"{showtime_id}\n")

    host = env.get("BOXOFFICE_API_HOST", "127.0.0.1")
    port = env.get("BOXOFFICE_API_PORT", "8000")
    base = f"http://{host}:{port}"
    print(
        f"""
Boxoffice is starting.
  API:            {base}      docs: {base}/docs
  API key:        {api_key}
  demo showtime:  {showtime_id}
  mail:           {var / "mail"}/ (every email sent is saved there)
  sms:            {var / "sms"}/ (every SMS sent is saved there)
  database:       {env["DATABASE_URL"]}
  redis:          {env["REDIS_URL"]}
Press Ctrl-C to stop everything.
""",
        flush=True,
    )

    python = sys.executable
    manager = Manager()
    processes = {
        "api": [python, "-m", "boxoffice_booking.main"],
        "relay": [python, "-m", "boxoffice_booking.relay"],
        "notifier-email": [python, "-m", "boxoffice_notifier.main", "email"],
        "notifier-sms": [python, "-m", "boxoffice_notifier.main", "sms"],
        "reaper": [python, "-m", "boxoffice_reaper.main"],
        "scheduler": [python, "-m", "boxoffice_scheduler.main"],
        "smtp": [
            python,
            "-m",
            "boxoffice_devstack.cli",
            "smtp-sink",
            "--port",
            str(smtp_port),
            "--dir",
            str(var / "mail"),
        ],
        "sms": [
            python,
            "-m",
            "boxoffice_devstack.cli",
            "sms-sink",
            "--port",
            str(sms_port),
            "--dir",
            str(var / "sms"),
        ],
    }
    if flower:
        # Flower reads the task events the workers send: turn them on for every process.
        env["BOXOFFICE_CELERY_TASK_EVENTS"] = "true"
        flower_port = env.get("BOXOFFICE_FLOWER_PORT", "5555")
        processes["flower"] = [
            python,
            "-m",
            "celery",
            "--broker",
            env["REDIS_URL"],
            "flower",
            "--address=127.0.0.1",
            f"--port={flower_port}",
        ]
        print(f"  flower:         http://127.0.0.1:{flower_port}", flush=True)
    # Each worker-like process serves /metrics on its own port (the API serves it on its own).
    metrics_ports = {
        "relay": 9101,
        "notifier-email": 9102,
        "reaper": 9103,
        "scheduler": 9104,
        "notifier-sms": 9105,
    }
    print(
        "  metrics:        "
        + "  ".join(f"{name} :{port}" for name, port in metrics_ports.items())
        + f"  api {base}/metrics",
        flush=True,
    )
    for name, argv in processes.items():
        process_env = dict(env)
        if name in metrics_ports:
            process_env["BOXOFFICE_METRICS_PORT"] = str(metrics_ports[name])
        if name == "flower":
            # Local only (bound to 127.0.0.1): let Flower's UI call its own API without a login.
            process_env.setdefault("FLOWER_UNAUTHENTICATED_API", "true")
        manager.add_process(name, " ".join(argv), env=process_env)
    try:
        manager.loop()
    finally:
        if redis is not None:
            redis.stop()
    return int(manager.returncode or 0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="boxoffice-dev")
    commands = parser.add_subparsers(dest="command", required=True)
    run_cmd = commands.add_parser("run", help="run every service on embedded defaults")
    run_cmd.add_argument("--var", type=Path, default=Path("var"))
    run_cmd.add_argument("--flower", action="store_true", help="also start Flower on :5555")
    sink = commands.add_parser("smtp-sink", help="an SMTP server saving mail to a folder")
    sink.add_argument("--host", default="127.0.0.1")
    sink.add_argument("--port", type=int, default=1025)
    sink.add_argument("--dir", type=Path, default=Path("var/mail"))
    sms = commands.add_parser("sms-sink", help="an SMS gateway saving messages to a folder")
    sms.add_argument("--host", default="127.0.0.1")
    sms.add_argument("--port", type=int, default=8025)
    sms.add_argument("--dir", type=Path, default=Path("var/sms"))
    args = parser.parse_args(argv)
    if args.command == "run":
        sys.exit(run(args.var, flower=args.flower))
    if args.command == "sms-sink":
        sms_sink.serve(args.host, args.port, args.dir)
    else:
        smtp_sink.serve(args.host, args.port, args.dir)


if __name__ == "__main__":
    main()
