"""Outgoing mail: a small port, an SMTP adapter and an in-memory fake.

The SMTP adapter runs the standard library's blocking client in a worker thread (one short
connection per message), so sending never stalls the event loop.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import structlog

from accounts.settings import MailSettings
from state.threads import run_sync

__all__ = ["LogMailer", "Mailer", "MemoryMailer", "OutgoingMail", "SmtpMailer", "open_mailer"]

log = structlog.get_logger("accounts.mail")


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    to: str
    subject: str
    body: str


class Mailer(Protocol):
    async def send(self, mail: OutgoingMail) -> None:
        """Deliver ``mail`` or raise ``OSError``/``smtplib.SMTPException``."""
        ...


class SmtpMailer:
    def __init__(self, settings: MailSettings) -> None:
        if settings.smtp_host is None:
            raise ValueError("MailSettings.smtp_host is required for SMTP")
        self._settings = settings

    async def send(self, mail: OutgoingMail) -> None:
        await run_sync(self._send_blocking, mail)

    def _send_blocking(self, mail: OutgoingMail) -> None:
        settings = self._settings
        message = EmailMessage()
        message["From"] = settings.from_address
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message.set_content(mail.body)
        host = settings.smtp_host or "localhost"
        client: smtplib.SMTP
        if settings.smtp_security == "tls":
            client = smtplib.SMTP_SSL(
                host,
                settings.smtp_port,
                timeout=settings.timeout_s,
                context=ssl.create_default_context(),
            )
        else:
            client = smtplib.SMTP(host, settings.smtp_port, timeout=settings.timeout_s)
        with client:
            if settings.smtp_security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if settings.smtp_username and settings.smtp_password is not None:
                client.login(settings.smtp_username, settings.smtp_password.get_secret_value())
            client.send_message(message)
        log.info("mail.sent", subject=mail.subject, body_chars=len(mail.body))


class LogMailer:
    """No SMTP configured (development): records that a message would go out, not its body."""

    async def send(self, mail: OutgoingMail) -> None:
        log.warning("mail.not_configured", subject=mail.subject)


class MemoryMailer:
    """The fake: keeps every message in ``outbox``."""

    def __init__(self) -> None:
        self.outbox: list[OutgoingMail] = []

    async def send(self, mail: OutgoingMail) -> None:
        self.outbox.append(mail)


def open_mailer(settings: MailSettings) -> Mailer:
    return SmtpMailer(settings) if settings.smtp_host is not None else LogMailer()
