"""Email over SMTP (stdlib smtplib, in a thread): STARTTLS (the server's certificate
checked, against ``ca_file`` when given) and AUTH when configured. The Message-ID is
derived from the notification's id: a resend after a crash carries the same one.
An SMTP 4xx (or no connection) is retried; a 5xx is a refusal."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage

from workorder_pipeline.schemas.notifications import AttemptOutcome, EmailReceiver
from workorder_pipeline.services.notifications import Outgoing, Receipt
from workorder_pipeline.streams.channels.http import missing, wrong_channel


def compose(message: Outgoing, via: EmailReceiver) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = via.sender
    mail["To"] = ", ".join(via.to)
    mail["Subject"] = f"{message.text.title} {message.work_order_id}"
    mail["Message-ID"] = f"<{message.notification_id}@workorders.invalid>"
    mail.set_content(message.text.text, charset="utf-8")
    return mail


class EmailChannel:
    def __init__(self, environ: Mapping[str, str], timeout_s: float) -> None:
        self._environ = environ
        self._timeout = timeout_s

    async def send(self, message: Outgoing) -> Receipt:
        via = message.receiver.via
        if not isinstance(via, EmailReceiver):
            return wrong_channel(message)
        password = None
        if via.password_env is not None:
            password = self._environ.get(via.password_env)
            if not password:
                return missing(via.password_env)
        return await asyncio.to_thread(self._send, compose(message, via), via, password)

    def _send(self, mail: EmailMessage, via: EmailReceiver, password: str | None) -> Receipt:
        try:
            with smtplib.SMTP(via.host, via.port, timeout=self._timeout) as smtp:
                if via.starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=via.ca_file))
                if via.username is not None and password is not None:
                    smtp.login(via.username, password)
                smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            code = next(iter(exc.recipients.values()))[0]
            return _by_code(code, "recipients refused")
        except smtplib.SMTPResponseException as exc:
            return _by_code(exc.smtp_code, type(exc).__name__)
        except (OSError, smtplib.SMTPException) as exc:
            return Receipt(AttemptOutcome.unreachable, None, type(exc).__name__)
        return Receipt(AttemptOutcome.delivered, "250", "ok")


def _by_code(code: int, detail: str) -> Receipt:
    outcome = AttemptOutcome.unreachable if 400 <= code < 500 else AttemptOutcome.rejected
    return Receipt(outcome, str(code), detail)
