"""Render email and SMS messages from the Jinja2 templates under `templates/`."""

from __future__ import annotations

import functools
import secrets
from email import encoders
from email.charset import QP, Charset
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
from email.utils import formataddr, formatdate, getaddresses, parseaddr
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from boxoffice_notifier import gsm7
from boxoffice_notifier.details import BookingDetails
from boxoffice_notifier.ics import booking_calendar

templates = Environment(
    loader=PackageLoader("boxoffice_notifier", "templates"),
    undefined=StrictUndefined,
    # HTML is escaped (film titles are user input); plain text and SMS are not.
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    # Templates ship with the package: no stat() of each file on every render.
    auto_reload=False,
    keep_trailing_newline=True,
    trim_blocks=True,
)

# Kinds that carry the showtime as an `.ics` attachment.
WITH_CALENDAR = {"booking_confirmed"}

# RFC 5322: no line longer than 998 octets; a body with longer lines goes quoted-printable.
MAX_LINE_OCTETS = 998

# Messages are assembled with the email package's compat32 classes (MIMEMultipart, MIMEText)
# rather than EmailMessage and its default policy: the modern API parses every header it is
# given (and each it sets itself) with its header registry, which cost about 3 ms of CPU per
# email, most of the notifier's own time per message under load. The MIME on the wire is the
# same (7bit or 8bit text, quoted-printable past the line limit, RFC 2047 headers when
# non-ASCII); what the modern API checked on the way in is checked here (no CR/LF in headers).
_UTF8_8BIT = Charset("utf-8")
# No body encoding: 7bit or 8bit by content, as EmailMessage.set_content chose.
_UTF8_8BIT.body_encoding = None  # type: ignore[assignment]
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


class _Compat32(Compat32):
    """compat32 with a short cut for the usual header, plain ASCII on one short line, which it
    writes as is: its general folding (through email.header.Header) was two thirds of the
    time to flatten a message for SMTP. Anything else is folded as compat32 folds it."""

    def _plain(self, name: str, value: object) -> bool:
        return (
            isinstance(value, str)
            and value.isascii()
            and "\r" not in value
            and "\n" not in value
            and len(name) + 2 + len(value) <= (self.max_line_length or MAX_LINE_OCTETS)
        )

    def fold(self, name: str, value: str) -> str:
        if self._plain(name, value):
            return f"{name}: {value}{self.linesep}"
        return super().fold(name, value)

    def fold_binary(self, name: str, value: str) -> bytes:
        if self._plain(name, value):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


POLICY = _Compat32()


def render_email(
    kind: str,
    *,
    sender: str,
    recipients: list[str],
    event_id: str,
    context: dict[str, Any],
    headers: dict[str, str] | None = None,
    attachments: list[MIMEBase] | None = None,
) -> Message:
    """A multipart text + HTML email (then any attachments).

    The Message-ID is the event's and the kind's alone, the same on every attempt: an email
    sent again because a worker died between the server's acceptance and its record of it is
    the same message, which receiving servers and mail clients show once (RFC 5322 3.6.4).
    """
    texts = (_render(f"email/{kind}.txt.j2", context), _render(f"email/{kind}.html.j2", context))
    boundary = _boundary(texts)
    body = MIMEMultipart("alternative", boundary + "a", policy=POLICY)
    body.attach(_text_part(texts[0], "plain"))
    body.attach(_text_part(texts[1], "html"))
    message = body
    if attachments:
        message = MIMEMultipart("mixed", boundary + "m", policy=POLICY)
        del body["MIME-Version"]
        message.attach(body)
        for attachment in attachments:
            message.attach(attachment)
    message["From"] = _addresses(sender)
    message["To"] = _addresses(", ".join(recipients))
    # One line, whatever the template and the data (a film title) contained.
    message["Subject"] = _header(" ".join(_render(f"email/{kind}.subject.j2", context).split()))
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id(event_id, kind)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Boxoffice-Event-Id"] = _header(event_id)
    message["X-Boxoffice-Kind"] = _header(kind)
    for name, value in (headers or {}).items():
        message[name] = _header(value)
    return message


def _boundary(texts: tuple[str, ...]) -> str:
    """A MIME boundary found in none of the parts, chosen here rather than by the generator.

    The generator's own check compiles a regular expression for each random boundary and runs
    it over the whole flattened message: a tenth of the notifier's CPU per email. The random
    token is 96 bits; `=_` never appears in base64 or quoted-printable text, and the plain
    parts are checked for the token before it is used.
    """
    while True:
        token = secrets.token_hex(12)
        if not any(token in text for text in texts):
            return f"=_{token}"


def message_id(event_id: str, kind: str) -> str:
    """The Message-ID of the `kind` email about `event_id`: the same for every attempt."""
    local = "".join(
        c if c.isascii() and (c.isalnum() or c in "-._") else "-" for c in f"{event_id}.{kind}"
    )
    return f"<{local}@boxoffice.invalid>"


def render_booking_email(
    kind: str, details: BookingDetails, *, sender: str, event_id: str, **extra: Any
) -> Message:
    """The customer's email about a booking, with a calendar attachment for confirmations."""
    attachments = []
    if kind in WITH_CALENDAR:
        attachments.append(
            _calendar_part(
                booking_calendar(details, organizer=_address_of(sender)),
                filename=f"booking-{details.reference}.ics",
            )
        )
    return render_email(
        kind,
        sender=sender,
        recipients=[details.email],
        event_id=event_id,
        context={"b": details, **extra},
        headers={"X-Boxoffice-Booking": details.reference},
        attachments=attachments,
    )


@functools.lru_cache(maxsize=16)
def _address_of(sender: str) -> str:
    """The address in a `Name <address>` header value (the configured sender: parsed once)."""
    return parseaddr(sender)[1]


def _text_part(text: str, subtype: str) -> MIMEText:
    if text.isascii() and _longest_line(text) <= MAX_LINE_OCTETS:
        part = MIMEText(text, subtype, "us-ascii", policy=POLICY)
    else:
        encoded = text.encode()
        charset = _UTF8_8BIT if _longest_line(encoded) <= MAX_LINE_OCTETS else _UTF8_QP
        part = MIMEText(text, subtype, charset, policy=POLICY)  # type: ignore[arg-type]  # a Charset will do
    del part["MIME-Version"]  # only the top-level part says it
    return part


def _longest_line(text: str | bytes) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def _calendar_part(ics: bytes, filename: str) -> MIMEBase:
    part = MIMEBase("text", "calendar", policy=POLICY, method="PUBLISH", charset="utf-8")
    del part["MIME-Version"]
    part.set_payload(ics)
    encoders.encode_base64(part)
    part.add_header("Content-Disposition", "attachment", filename=filename)
    return part


def _header(value: str) -> str:
    """A header value, which compat32 folds and RFC 2047-encodes if it is not ASCII; never CR
    or LF (data that could start a header of its own), as EmailMessage would refuse them."""
    if "\r" in value or "\n" in value:
        raise ValueError("header values may not contain line breaks")
    return value


def _addresses(value: str) -> str:
    """An address list with any non-ASCII display name encoded (RFC 2047), every domain in its
    IDNA (ASCII) form, and a non-ASCII local part kept as UTF-8 (RFC 6532: such a message
    needs a server that offers SMTPUTF8; see smtp.py)."""
    if "\r" in value or "\n" in value:
        raise ValueError("header values may not contain line breaks")
    if value.isascii():
        return value
    return ", ".join(_address(name, address) for name, address in getaddresses([value]))


def _address(name: str, address: str) -> str:
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    if domain and not domain.isascii():
        domain = idna_domain(domain)
    address = f"{local}@{domain}" if at else local
    if address.isascii():
        return formataddr((name, address), charset="utf-8")
    # The UTF-8 bytes as surrogate escapes: compat32 writes them out as they are (8bit)
    # instead of RFC 2047-encoding the address, which would make it unreadable to a server.
    raw = address.encode("utf-8").decode("ascii", "surrogateescape")
    if not name:
        return raw
    shown = formataddr((name, "x@x"), charset="utf-8").rsplit(" <", 1)[0]
    return f"{shown} <{raw}>"


def idna_domain(domain: str) -> str:
    """`exämple.com` as `xn--exmple-cua.com`, the form every mail server accepts."""
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"not a valid internationalised domain: {exc}") from exc


def render_sms(kind: str, details: BookingDetails, **extra: Any) -> str:
    """The SMS text in GSM-7, at most 160 septets; a long film title is shortened first."""
    film = gsm7.to_gsm7(details.film)
    text = gsm7.to_gsm7(_render(f"sms/{kind}.txt.j2", {"b": details, "film": film, **extra}))
    text = text.strip()
    overflow = gsm7.septets(text) - gsm7.SINGLE_SMS_SEPTETS
    if overflow > 0 and len(film) > 8:
        short_film = gsm7.fit(film, max(8, gsm7.septets(film) - overflow))
        text = _render(f"sms/{kind}.txt.j2", {"b": details, "film": short_film, **extra})
        text = gsm7.to_gsm7(text).strip()
    return gsm7.fit(text)


def _render(name: str, context: dict[str, Any]) -> str:
    return templates.get_template(name).render(**context)
