"""A real SMTP server (aiosmtpd) in a process of its own, keeping each message as a file.

The chaos run uses it instead of the in-process `SmtpServer`: inside the pytest process its
event loop waits for the interpreter lock behind the test's client threads, so it stores a
message and answers `250` tens of milliseconds apart, where a mail server answers as soon
as it has stored it. A notifier killed in that gap has sent an email it never heard
accepted, and sends it again; the gap belongs to the test, not to the system under test.

Run as `python -m tests.support.smtp_process PORT DIRECTORY`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from boxoffice_devstack.servers import free_port, stop_process, wait_for_start
from boxoffice_devstack.smtp_sink import OffersPipelining

ROOT = Path(__file__).resolve().parents[2]


class _StoringHandler(OffersPipelining):
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.count += 1
            name = f"{self.count:07d}.eml"
        staged = self.directory / f".{name}"
        staged.write_bytes(envelope.content)
        staged.rename(self.directory / name)
        return "250 OK"


class SmtpProcess:
    """Start with `.start()`; `messages()` reads what it has stored so far."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> SmtpProcess:
        log = open(self.directory.parent / "smtp.log", "ab")  # noqa: SIM115 - owned by the child
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
        command = [sys.executable, "-m", "tests.support.smtp_process"]
        self.process = subprocess.Popen(
            [*command, str(self.port), str(self.directory)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for_start(
            self.process,
            self._greets,
            f"the SMTP server did not start; see {log.name}",
            timeout=30,
            errors=(OSError,),
        )
        return self

    def _greets(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
            return sock.recv(64).startswith(b"220")

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def messages(self) -> list[Message]:
        return [message for message, _ in self.received()]

    def received(self) -> list[tuple[Message, float]]:
        """Each message stored so far, with when it was stored (before the server's 250)."""
        return [
            (message_from_bytes(path.read_bytes()), path.stat().st_mtime)
            for path in sorted(self.directory.glob("[0-9]*.eml"))
        ]


def main() -> None:
    port, directory = int(sys.argv[1]), Path(sys.argv[2])
    controller = Controller(_StoringHandler(directory), hostname="127.0.0.1", port=port)
    controller.start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    controller.stop()


if __name__ == "__main__":
    main()
