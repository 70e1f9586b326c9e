"""Email the assembled daily report to the configured operators, once per day."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from boxoffice_notifier.deliveries import Budgeted, DeliveryKey, Outcome, deliver, skip
from boxoffice_notifier.messages import render_email
from boxoffice_notifier.providers import get_providers
from boxoffice_notifier.reports import assemble_report, report_event_id

log = logging.getLogger(__name__)

REPORT_CHANNEL = "email"


def report_key(day: date) -> DeliveryKey:
    return DeliveryKey(report_event_id(day), REPORT_CHANNEL, "daily_report")


def email_report(day: date, parts: list[dict[str, Any]]) -> Outcome:
    """Send the report for `day` to every operator in one email, unless already sent."""
    providers = get_providers()
    key = report_key(day)
    recipients = providers.settings.report_recipients
    if not recipients:
        return skip(key, "no report recipients configured")
    message = render_email(
        "daily_report",
        sender=providers.settings.mail_from,
        recipients=recipients,
        event_id=str(key.event_id),
        context={"report": assemble_report(day, parts)},
    )

    def send() -> None:
        providers.smtp.send(message)

    outcome = deliver(key, lambda _connection, _booking: Budgeted(providers.smtp_limit, send))
    log.info("daily report %s", outcome.value, extra={"day": day.isoformat()})
    return outcome
