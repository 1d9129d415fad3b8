"""Email over SMTP (stdlib smtplib, in a thread): STARTTLS (the server's certificate
checked, against ``ca_file`` when given) and AUTH when configured. The Message-ID is
derived from the notification's id: a resend after a crash carries the same one.
An SMTP 4xx (or no connection) is retried; a 5xx is a refusal.

smtplib's timeout bounds each read, not the conversation: a server answering a byte a
second would hold the channel for ever. The whole conversation has an exchange's deadline
(deadline.deadline_for); past it the connection is shut down, which ends the thread's
read. It is the send's one exchange: begun only if that deadline falls by the send's
(deadline.may_start), as each SMS request is."""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import socket
import ssl
import threading
from collections.abc import Mapping
from email.message import EmailMessage

from workorder_pipeline.schemas.notifications import AttemptOutcome, EmailReceiver
from workorder_pipeline.services.notifications import Outgoing, Receipt
from workorder_pipeline.streams.channels.deadline import deadline_for, may_start, not_tried, too_slow
from workorder_pipeline.streams.channels.http import missing, wrong_channel


def compose(message: Outgoing, via: EmailReceiver) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = via.sender
    mail["To"] = ", ".join(via.to)
    mail["Subject"] = f"{message.text.title} {message.work_order_id}"
    mail["Message-ID"] = f"<{message.notification_id}@workorders.invalid>"
    mail.set_content(message.text.text, charset="utf-8")
    return mail


class _AbortableSmtp(smtplib.SMTP):
    """An SMTP client another thread can stop: ``abort`` shuts its connection down (a read
    in progress ends at once) and refuses any connection made after it."""

    _host: str  # smtplib's: what STARTTLS checks the certificate against

    def __init__(self, host: str, timeout: float) -> None:
        self._lock = threading.Lock()
        self._aborted = False
        super().__init__(timeout=timeout)  # no host: connects in ``connect``
        self._host = host  # smtplib sets it only when __init__ connects

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock: socket.socket = super()._get_socket(host, port, timeout)  # type: ignore[misc]  # not in typeshed
        with self._lock:
            if self._aborted:
                _shut(sock)
        return sock

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            sock = getattr(self, "sock", None)  # after STARTTLS: the TLS socket
        if sock is not None:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class EmailChannel:
    def __init__(self, environ: Mapping[str, str], timeout_s: float) -> None:
        self._environ = environ
        self._timeout = timeout_s
        self._deadline_s = deadline_for(timeout_s)

    async def send(self, message: Outgoing) -> Receipt:
        via = message.receiver.via
        if not isinstance(via, EmailReceiver):
            return wrong_channel(message)
        password = None
        if via.password_env is not None:
            password = self._environ.get(via.password_env)
            if not password:
                return missing(via.password_env)
        if not may_start(message, self._deadline_s):
            return not_tried()
        smtp = _AbortableSmtp(via.host, self._timeout)
        sending = asyncio.ensure_future(asyncio.to_thread(_send, smtp, compose(message, via), via, password))
        sending.add_done_callback(lambda done: done.cancelled() or done.exception())  # seen, if late
        try:
            async with asyncio.timeout(self._deadline_s):
                return await asyncio.shield(sending)
        except TimeoutError:
            smtp.abort()  # the thread's read fails now; its result is not waited for
            return too_slow()


def _send(smtp: _AbortableSmtp, mail: EmailMessage, via: EmailReceiver, password: str | None) -> Receipt:
    try:
        with smtp:
            smtp.connect(via.host, via.port)
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
