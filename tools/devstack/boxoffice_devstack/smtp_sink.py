"""An SMTP server (aiosmtpd) that saves every message it accepts as a `.eml` file."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from boxoffice_devstack.servers import wait_for_stop_signal


class OffersPipelining:
    """An aiosmtpd handler that says PIPELINING (RFC 2920) in its EHLO reply, as Postfix and
    most relays do, unless `offer_pipelining` is False. aiosmtpd reads each command off the
    stream in turn, so it already takes a client's pipelined commands; it only does not say so.
    """

    offer_pipelining = True

    async def handle_EHLO(  # noqa: N802 - aiosmtpd hook
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # the hook's job once a handler has one
        if not self.offer_pipelining:
            return responses
        return [*responses[:-1], "250-PIPELINING", responses[-1]]  # before "250 HELP"


class MaildirHandler(OffersPipelining):
    def __init__(self, mail_dir: Path) -> None:
        self.mail_dir = mail_dir
        mail_dir.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
        tmp = self.mail_dir / f".{name}.tmp"
        tmp.write_bytes(envelope.content)
        tmp.rename(self.mail_dir / name)
        return "250 Message accepted for delivery"


def serve(host: str, port: int, mail_dir: Path) -> None:
    """Serve until SIGTERM or SIGINT."""
    controller = Controller(MaildirHandler(mail_dir), hostname=host, port=port)
    controller.start()
    print(f"SMTP sink on {host}:{port}, saving mail to {mail_dir}/", flush=True)
    wait_for_stop_signal()
    controller.stop()
