"""SMTP and the SMS gateway against real servers: TLS, auth, reuse, and failure classes."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable, Iterator
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

import pytest
import trustme
from boxoffice_devstack.servers import free_port
from boxoffice_notifier.errors import PermanentDeliveryError, TransientDeliveryError
from boxoffice_notifier.sms import SmsGateway
from boxoffice_notifier.smtp import SmtpSender, classify_smtp_error
from boxoffice_settings import Settings
from pydantic import SecretStr

from tests.support.sms_gateway import SmsGatewayServer
from tests.support.smtp import SmtpServer, WithholdingServer


def settings(**changes: Any) -> Settings:
    return Settings(database_url="postgresql://unused", redis_url="redis://unused", **changes)


def email(n: int = 1) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "tickets@boxoffice.example"
    message["To"] = "ada@example.com"
    message["Subject"] = f"message {n}"
    message.set_content("hello")
    return message


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def start_smtp() -> Iterator[Callable[..., SmtpServer]]:
    """Start SmtpServer(**options) for a test; each one started is stopped after it."""
    started: list[SmtpServer] = []

    def start(**options: Any) -> SmtpServer:
        started.append(SmtpServer(**options).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture(params=[False, True], ids=["lockstep", "pipelining"])
def plain_smtp(start_smtp: Callable[..., SmtpServer], request: pytest.FixtureRequest) -> SmtpServer:
    """A plain server, once waiting for each reply (no PIPELINING offered) and once with the
    envelope pipelined (offered, as Postfix and most relays offer it)."""
    return start_smtp(pipelining=request.param)


def starttls_sender(server: SmtpServer, ca_file: Path, password: str, **changes: Any) -> SmtpSender:
    """A sender that logs in as mailer over STARTTLS, trusting our CA."""
    return SmtpSender(
        settings(
            smtp_port=server.port,
            smtp_starttls=True,
            smtp_ca_file=str(ca_file),
            smtp_username="mailer",
            smtp_password=SecretStr(password),
            **changes,
        )
    )


def test_starttls_with_login_delivers(
    start_smtp: Callable[..., SmtpServer], ca: trustme.CA, ca_file: Path
) -> None:
    server = start_smtp(starttls=server_context(ca), login=("mailer", "s3cret"))
    sender = starttls_sender(server, ca_file, "s3cret")
    sender.send(email())
    sender.close()
    assert [m["Subject"] for m in server.messages()] == ["message 1"]
    assert server.logins == ["mailer"]


def test_wrong_password_waits_for_an_operator_rather_than_dropping(
    start_smtp: Callable[..., SmtpServer], ca: trustme.CA, ca_file: Path
) -> None:
    server = start_smtp(starttls=server_context(ca), login=("mailer", "s3cret"))
    sender = starttls_sender(server, ca_file, "wrong", smtp_timeout_seconds=2)
    with pytest.raises(TransientDeliveryError):
        sender.send(email())
    assert server.messages() == []


def test_implicit_tls_delivers_and_checks_the_certificate(
    start_smtp: Callable[..., SmtpServer], ca: trustme.CA, ca_file: Path
) -> None:
    server = start_smtp(implicit_tls=server_context(ca))
    trusted = SmtpSender(settings(smtp_port=server.port, smtp_ssl=True, smtp_ca_file=str(ca_file)))
    trusted.send(email())
    trusted.close()
    assert len(server.messages()) == 1
    # Without our CA the certificate is not trusted: nothing is sent, and it is retried.
    untrusted = SmtpSender(settings(smtp_port=server.port, smtp_ssl=True))
    with pytest.raises(TransientDeliveryError):
        untrusted.send(email(2))
    assert len(server.messages()) == 1


def test_one_connection_carries_many_messages(plain_smtp: SmtpServer) -> None:
    sender = SmtpSender(settings(smtp_port=plain_smtp.port))
    for n in range(5):
        sender.send(email(n))
    sender.close()
    assert len(plain_smtp.messages()) == 5
    assert plain_smtp.connections_used() == 1


def test_4xx_is_transient_and_5xx_permanent_and_the_connection_survives(
    plain_smtp: SmtpServer,
) -> None:
    sender = SmtpSender(settings(smtp_port=plain_smtp.port))
    plain_smtp.refuse_next("451 4.3.0 Try again later", "550 5.1.1 No such user")
    with pytest.raises(TransientDeliveryError, match="451"):
        sender.send(email(1))
    with pytest.raises(PermanentDeliveryError, match="550"):
        sender.send(email(2))
    sender.send(email(3))
    sender.close()
    assert [m["Subject"] for m in plain_smtp.messages()] == ["message 3"]
    assert plain_smtp.connections_used() == 1


def test_no_server_is_transient() -> None:
    sender = SmtpSender(settings(smtp_port=free_port(), smtp_timeout_seconds=2))
    with pytest.raises(TransientDeliveryError):
        sender.send(email())


def test_a_pooled_connection_the_server_dropped_is_replaced() -> None:
    server = SmtpServer().start()
    port = server.port
    sender = SmtpSender(settings(smtp_port=port))
    sender.send(email(1))
    server.stop()
    restarted = SmtpServer(port).start()
    try:
        sender.send(email(2))
        sender.close()
        assert [m["Subject"] for m in restarted.messages()] == ["message 2"]
    finally:
        restarted.stop()


@pytest.fixture
def gateway() -> Iterator[SmsGatewayServer]:
    server = SmsGatewayServer().start()
    yield server
    server.stop()


def sms_settings(gateway: SmsGatewayServer, **changes: Any) -> Settings:
    env = gateway.env()
    values: dict[str, Any] = {
        "sms_gateway_url": env["BOXOFFICE_SMS_GATEWAY_URL"],
        "sms_gateway_account": env["BOXOFFICE_SMS_GATEWAY_ACCOUNT"],
        "sms_gateway_token": SecretStr(env["BOXOFFICE_SMS_GATEWAY_TOKEN"]),
    }
    return settings(**(values | changes))


def test_sms_is_a_form_post_with_basic_auth_and_an_idempotency_key(
    gateway: SmsGatewayServer,
) -> None:
    client = SmsGateway(sms_settings(gateway, sms_sender="BOXOFC"))
    message_id = client.send("+919800000001", "Booking K7M2Q9XZ confirmed", "event-1:sms")
    client.close()
    [sms] = gateway.messages()
    assert sms.to == "+919800000001"
    assert sms.sender == "BOXOFC"
    assert sms.body == "Booking K7M2Q9XZ confirmed"
    assert sms.idempotency_key == "event-1:sms"
    assert message_id is not None
    assert message_id.startswith("SM")


def test_sms_gateway_errors_are_classified(gateway: SmsGatewayServer) -> None:
    client = SmsGateway(sms_settings(gateway))
    gateway.fail_next(429, 503, 400)
    with pytest.raises(TransientDeliveryError, match="429"):
        client.send("+919800000001", "x", "k1")
    with pytest.raises(TransientDeliveryError, match="503"):
        client.send("+919800000001", "x", "k2")
    with pytest.raises(PermanentDeliveryError, match="400"):
        client.send("+919800000001", "x", "k3")
    client.close()
    assert gateway.messages() == []


def test_sms_with_a_wrong_token_waits_for_an_operator(gateway: SmsGatewayServer) -> None:
    client = SmsGateway(sms_settings(gateway, sms_gateway_token=SecretStr("wrong")))
    with pytest.raises(TransientDeliveryError, match="401"):
        client.send("+919800000001", "x", "k")
    client.close()


def test_unreachable_gateway_is_transient() -> None:
    url = f"http://127.0.0.1:{free_port()}/Messages.json"
    client = SmsGateway(settings(sms_gateway_url=url, sms_timeout_seconds=2))
    with pytest.raises(TransientDeliveryError, match="unreachable"):
        client.send("+919800000001", "x", "k")
    client.close()


def test_refused_login_is_classified_transient() -> None:
    error = classify_smtp_error(smtplib.SMTPAuthenticationError(535, b"5.7.8 bad credentials"))
    assert isinstance(error, TransientDeliveryError)
    refused = smtplib.SMTPRecipientsRefused({"x@example.com": (550, b"5.1.1 unknown")})
    assert isinstance(classify_smtp_error(refused), PermanentDeliveryError)
    greylisted = smtplib.SMTPRecipientsRefused({"x@example.com": (450, b"4.2.0 greylisted")})
    assert isinstance(classify_smtp_error(greylisted), TransientDeliveryError)


def international_email() -> Message:
    from boxoffice_notifier.messages import render_booking_email

    from tests.unit.notifier.samples import sample_details

    return render_booking_email(
        "booking_confirmed",
        sample_details(email="josé@exämple.com"),
        sender="tickets@boxoffice.example",
        event_id="8d3c4a8e-2f5b-4a1e-9f77-0c1d2e3f4a5c",
    )


@pytest.mark.parametrize("pipelining", [False, True], ids=["lockstep", "pipelining"])
def test_an_internationalised_address_is_delivered_with_smtputf8_and_an_idna_domain(
    start_smtp: Callable[..., SmtpServer], pipelining: bool
) -> None:
    server = start_smtp(smtputf8=True, pipelining=pipelining)
    sender = SmtpSender(settings(smtp_port=server.port))
    sender.send(international_email())
    sender.close()
    [(options, recipients)] = server.envelopes()
    assert "SMTPUTF8" in options
    assert recipients == ["josé@xn--exmple-cua.com"]
    [received] = server.messages()
    raw_to = received.get_all("To")
    assert raw_to is not None
    assert "xn--exmple-cua.com" in str(raw_to[0])


def test_an_idn_domain_alone_needs_no_smtputf8(start_smtp: Callable[..., SmtpServer]) -> None:
    server = start_smtp(smtputf8=False)
    sender = SmtpSender(settings(smtp_port=server.port))
    message = international_email()
    del message["To"]
    from boxoffice_notifier.messages import _addresses

    message["To"] = _addresses("Zoë Ñandú <zoe@exämple.com>")
    sender.send(message)
    sender.close()
    [(options, recipients)] = server.envelopes()
    assert "SMTPUTF8" not in options
    assert recipients == ["zoe@xn--exmple-cua.com"]


def test_a_non_ascii_mailbox_to_a_server_without_smtputf8_is_a_permanent_failure(
    start_smtp: Callable[..., SmtpServer],
) -> None:
    server = start_smtp(smtputf8=False)
    sender = SmtpSender(settings(smtp_port=server.port))
    with pytest.raises(PermanentDeliveryError, match="SMTPUTF8"):
        sender.send(international_email())
    sender.close()
    assert server.messages() == []


def test_a_relay_offering_pipelining_gets_the_envelope_in_one_round_trip() -> None:
    """The server answers no MAIL or RCPT before DATA has come: a client waiting for each reply
    would time out. Non-ASCII mailboxes (SMTPUTF8) and a line starting with a dot go through."""
    server = WithholdingServer().start()
    try:
        sender = SmtpSender(settings(smtp_port=server.port, smtp_timeout_seconds=5))
        sender.send(international_email())
        dotted = email(2)
        dotted.set_content(".hidden line\nsecond line\n")
        sender.send(dotted)
        sender.close()
    finally:
        server.stop()
    first, second = server.envelopes
    assert first[0].startswith("MAIL FROM:<tickets@boxoffice.example> SMTPUTF8 BODY=8BITMIME")
    assert "SIZE=" in first[0]
    assert first[1:] == ["RCPT TO:<josé@xn--exmple-cua.com>"]
    assert second[1:] == ["RCPT TO:<ada@example.com>"]
    assert "xn--exmple-cua.com" in server.contents[0].decode()
    assert b"\r\n.hidden line\r\nsecond line\r\n" in server.contents[1]


@pytest.mark.parametrize("pipelining", [False, True], ids=["lockstep", "pipelining"])
def test_a_refused_sender_or_recipient_is_classified_and_the_session_stays_in_step(
    start_smtp: Callable[..., SmtpServer], pipelining: bool
) -> None:
    """Every reply of a refused envelope is read before the error is raised, so the next
    message on the same connection is answered by its own replies, pipelined or not."""
    server = start_smtp(pipelining=pipelining)
    server.refuse_recipient("nobody@example.com", "550 5.1.1 no such user")
    sender = SmtpSender(settings(smtp_port=server.port))
    server.refuse_mail_next("451 4.7.1 slow down")
    with pytest.raises(TransientDeliveryError, match="451"):
        sender.send(email(1))
    lost = email(2)
    lost.replace_header("To", "nobody@example.com")
    with pytest.raises(PermanentDeliveryError, match="recipient refused: 550"):
        sender.send(lost)
    partly = email(3)
    partly["Cc"] = "nobody@example.com"
    sender.send(partly)  # delivered to the recipient the server took, as sendmail does
    sender.send(email(4))
    sender.close()
    assert [m["Subject"] for m in server.messages()] == ["message 3", "message 4"]
    assert [recipients for _, recipients in server.envelopes()] == [
        ["ada@example.com"],
        ["ada@example.com"],
    ]
    assert server.connections_used() == 1


def test_data_accepted_with_every_recipient_refused_is_ended_empty() -> None:
    """RFC 2920 lets a server answer DATA with 354 though it refused every RCPT: the client
    ends the message at once, sends none of it, and reports the refusal."""
    server = WithholdingServer(refuse_recipients=True).start()
    try:
        sender = SmtpSender(settings(smtp_port=server.port, smtp_timeout_seconds=5))
        for n in (1, 2):
            with pytest.raises(PermanentDeliveryError, match="recipient refused: 550"):
                sender.send(email(n))
        sender.close()
    finally:
        server.stop()
    assert server.contents == []
    assert server.empty_data == 2
