"""A real SMTP server (aiosmtpd) that keeps what it receives for assertions.

It can refuse on purpose (`refuse_next`, `refuse_mail_next`, `refuse_recipient`), speak
STARTTLS or implicit TLS, require authentication, offer PIPELINING, and tells how many
connections delivered mail. `WithholdingServer` proves a client pipelines its envelope.
"""

from __future__ import annotations

import asyncio
import socketserver
import ssl
import threading
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from boxoffice_devstack.servers import free_port
from boxoffice_devstack.smtp_sink import OffersPipelining


class RecordingHandler(OffersPipelining):
    def __init__(self, latency: float = 0.0, pipelining: bool = True) -> None:
        self.latency = latency
        self.offer_pipelining = pipelining
        self.mail_refusals: list[str] = []
        self.recipient_refusals: dict[str, str] = {}
        self.messages: list[Message] = []
        self.peers: list[tuple[str, int]] = []
        self.refusals: list[str] = []
        # Each message's envelope: MAIL FROM's options (SMTPUTF8...) and RCPT TO addresses.
        self.envelopes: list[tuple[list[str], list[str]]] = []
        self.refused = 0
        self.lock = threading.Lock()

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self.lock:
            if self.mail_refusals:
                self.refused += 1
                return self.mail_refusals.pop(0)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self.lock:
            refusal = self.recipient_refusals.get(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

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
        pipelining: bool = True,
    ) -> None:
        self.handler = RecordingHandler(latency, pipelining)
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

    def refuse_mail_next(self, *replies: str) -> None:
        """Answer the next MAIL commands with these replies (e.g. `451 4.7.1 slow down`)."""
        with self.handler.lock:
            self.handler.mail_refusals.extend(replies)

    def refuse_recipient(self, address: str, reply: str) -> None:
        """Answer every RCPT of `address` with `reply` (e.g. `550 5.1.1 no such user`)."""
        with self.handler.lock:
            self.handler.recipient_refusals[address] = reply

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


class WithholdingServer:
    """An SMTP server that answers nothing of an envelope until its DATA has arrived.

    It offers PIPELINING (with SMTPUTF8, 8BITMIME and SIZE), so a client may send MAIL, the
    RCPTs and DATA at once (RFC 2920); one that waits for MAIL's reply before going on waits
    until its timeout, and fails. So a delivery through it proves the envelope took one round
    trip. With `refuse_recipients` every RCPT is refused (550) and DATA still answered 354, as
    RFC 2920 lets a server answer, to see the client end such a message empty.
    """

    def __init__(self, *, refuse_recipients: bool = False) -> None:
        self.refuse_recipients = refuse_recipients
        self.envelopes: list[list[str]] = []  # each message's MAIL and RCPT lines, as sent
        self.contents: list[bytes] = []  # each accepted message, dot-stuffing undone
        self.empty_data = 0  # DATA ended at once (nothing to deliver)
        self.lock = threading.Lock()
        server = self

        class Session(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                server._session(self.rfile, self.wfile)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Session)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> WithholdingServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _session(self, rfile: Any, wfile: Any) -> None:
        def reply(*lines: str) -> None:
            wfile.write("".join(f"{line}\r\n" for line in lines).encode())
            wfile.flush()

        reply("220 withholding ESMTP")
        pending: list[str] = []
        while line := rfile.readline():
            command = line.decode("utf-8").rstrip("\r\n")
            verb = command.split(" ", 1)[0].upper()
            if verb == "EHLO":
                reply(
                    "250-withholding",
                    "250-PIPELINING",
                    "250-SMTPUTF8",
                    "250-8BITMIME",
                    "250 SIZE 10000000",
                )
            elif verb in ("MAIL", "RCPT"):
                pending.append(command)  # answered once DATA has come
            elif verb == "DATA":
                accepted = 0
                for held in pending:
                    if held.upper().startswith("RCPT") and self.refuse_recipients:
                        reply("550 5.1.1 no such user")
                    else:
                        accepted += held.upper().startswith("RCPT")
                        reply("250 OK")
                reply("354 End data with <CR><LF>.<CR><LF>")
                lines: list[bytes] = []
                while (data := rfile.readline()) not in (b".\r\n", b""):
                    lines.append(data[1:] if data.startswith(b".") else data)
                with self.lock:
                    if accepted:
                        self.envelopes.append(pending)
                        self.contents.append(b"".join(lines))
                    else:
                        self.empty_data += not lines
                pending = []
                reply("250 OK queued" if accepted else "554 5.5.1 no valid recipients")
            elif verb == "RSET":
                pending = []
                reply("250 OK")
            elif verb == "QUIT":
                reply("221 Bye")
                return
            else:
                reply("502 5.5.2 not implemented")
