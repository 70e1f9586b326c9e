"""A real SMTP server (aiosmtpd) that keeps what it receives for assertions.

It can refuse on purpose (`refuse_next`), speak STARTTLS or implicit TLS, require
authentication, and tells how many connections delivered mail.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from boxoffice_devstack.servers import free_port


class RecordingHandler:
    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.messages: list[Message] = []
        self.peers: list[tuple[str, int]] = []
        self.refusals: list[str] = []
        # Each message's envelope: MAIL FROM's options (SMTPUTF8...) and RCPT TO addresses.
        self.envelopes: list[tuple[list[str], list[str]]] = []
        self.refused = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.latency:
            await asyncio.sleep(self.latency)  # a remote server's round trips and fsync
        with self.lock:
            if self.refusals:
                self.refused += 1
                return self.refusals.pop(0)
            self.messages.append(message_from_bytes(envelope.content))
            self.envelopes.append((list(envelope.mail_options), list(envelope.rcpt_tos)))
            self.peers.append(tuple(session.peer))
        return "250 OK"


class SmtpServer:
    def __init__(
        self,
        port: int | None = None,
        *,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        login: tuple[str, str] | None = None,
        latency: float = 0.0,
        smtputf8: bool = False,
    ) -> None:
        self.handler = RecordingHandler(latency)
        self.port = port or free_port()
        self.logins: list[str] = []
        # SMTPUTF8 (RFC 6531) offered in EHLO, as most providers do; off, as older servers are.
        options: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
        if starttls is not None:
            options.update(tls_context=starttls, require_starttls=True)
        if login is not None:
            options.update(
                authenticator=self._authenticator(login), auth_required=True, auth_require_tls=True
            )
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=implicit_tls,
            **options,
        )

    def _authenticator(self, login: tuple[str, str]) -> Any:
        def authenticate(
            server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
        ) -> AuthResult:
            ok = (
                isinstance(auth_data, LoginPassword)
                and (
                    auth_data.login.decode(),
                    auth_data.password.decode(),
                )
                == login
            )
            if ok:
                self.logins.append(auth_data.login.decode())
            return AuthResult(success=ok)

        return authenticate

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def refuse_next(self, *replies: str) -> None:
        """Answer the next DATA commands with these replies (e.g. `451 4.3.0 try later`)."""
        with self.handler.lock:
            self.handler.refusals.extend(replies)

    def messages(self) -> list[Message]:
        with self.handler.lock:
            return list(self.handler.messages)

    def envelopes(self) -> list[tuple[list[str], list[str]]]:
        """(MAIL FROM options, RCPT TO addresses) of each message received."""
        with self.handler.lock:
            return list(self.handler.envelopes)

    def connections_used(self) -> int:
        """How many distinct client connections delivered the messages received."""
        with self.handler.lock:
            return len(set(self.handler.peers))

    @property
    def refused(self) -> int:
        with self.handler.lock:
            return self.handler.refused
