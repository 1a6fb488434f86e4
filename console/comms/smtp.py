"""Email over reused connections, and MIME composed directly for Django's SMTP backend.

A worker thread keeps its SMTP connections open from one task to the next (``thread_sessions()``), so a
task of one message costs no connection set-up. Before a kept connection carries its first message of a
task it is checked with NOOP, and reopened if the server dropped it while idle: a failure there is before
MAIL FROM, so nothing can have been sent and nothing is sent twice. Other mail backends (console, locmem,
provider APIs) are opened per task and closed after it, as their own connection handling expects.
"""

from __future__ import annotations

import base64
import contextlib
import smtplib
import threading
import uuid
from email.header import Header
from email.utils import formatdate
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, make_msgid
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.signals import setting_changed
from django.dispatch import receiver

from console.comms.models import Delivery
from console.comms.outcomes import SENT, TEMPORARY, Outcome, classify_smtp
from console.comms.providers import mailer

if TYPE_CHECKING:
    from django.core.mail.backends.base import BaseEmailBackend


class EmailSession:
    """One mailer connection reused for a batch; reopened after the server closes or drops it."""

    def __init__(self, alias: str) -> None:
        self.backend: BaseEmailBackend = mailer(alias)
        self.opened = False
        # Only Django's SMTP backend is kept open across tasks: its connection can be checked with NOOP.
        self.keeps = type(self.backend) is SMTPBackend
        self.checked = False

    def _reset(self) -> None:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            self.backend.close()
        if hasattr(self.backend, "connection"):
            self.backend.connection = None
        self.opened = False

    def close(self) -> None:
        if self.opened:
            self._reset()

    def end_task(self) -> None:
        """The task is done: keep the connection for the thread's next task, or close it."""
        self.checked = False
        if not self.keeps:
            self.close()

    def check(self) -> None:
        """A kept connection's first use in a task: reopen it if the server dropped it while idle."""
        self.checked = True
        connection = getattr(self.backend, "connection", None)
        if not self.opened or connection is None:
            return
        try:
            code, _ = connection.noop()
        except (smtplib.SMTPException, OSError):
            code = 0
        if code != 250:
            self._reset()

    def send(self, delivery: Delivery) -> Outcome:
        msg = delivery.message
        domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "localhost"
        message_id = make_msgid(idstring=f"console.{msg.pk}.{delivery.pk}.{delivery.attempts}", domain=domain)
        headers = {"Message-ID": message_id, "X-Console-Message-ID": str(msg.pk)}
        if msg.unsubscribe_url:
            # RFC 8058: mail clients show an unsubscribe button that POSTs to the link, without a browser.
            headers["List-Unsubscribe"] = f"<{msg.unsubscribe_url}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        fast = (
            type(self.backend) is SMTPBackend and delivery.address.isascii() and settings.DEFAULT_FROM_EMAIL.isascii()
        )
        email: EmailMultiAlternatives | None = None
        if not fast:
            email = EmailMultiAlternatives(
                subject=msg.subject,
                body=msg.text_body,
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=[delivery.address],
                headers=headers,
                connection=self.backend,
            )
            if msg.html_body:
                email.attach_alternative(msg.html_body, "text/html")
            # django-anymail sends this as provider metadata, so its tracking events name our message.
            email.metadata = {"console_message_id": str(msg.pk), "console_delivery_id": str(delivery.pk)}  # type: ignore[attr-defined]
        try:
            if not self.checked:
                self.check()
            if not self.opened:
                self.backend.open()
                self.opened = True
            if email is None:
                # Django's SMTP backend with plain addresses: hand smtplib bytes composed directly, which
                # costs a fraction of building an email.message object per message.
                data = compose_mime(
                    from_email=settings.DEFAULT_FROM_EMAIL,
                    to=delivery.address,
                    subject=msg.subject,
                    text=msg.text_body,
                    html=msg.html_body,
                    headers=headers,
                )
                self.backend.connection.sendmail(settings.DEFAULT_FROM_EMAIL, [delivery.address], data)  # type: ignore[attr-defined]
                sent = 1
            else:
                sent = self.backend.send_messages([email])
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            if code == 421:
                self._reset()
            return classify_smtp(code, reply)
        except smtplib.SMTPResponseException as exc:
            self._reset()
            return classify_smtp(exc.smtp_code, exc.smtp_error)
        except (smtplib.SMTPException, OSError) as exc:
            self._reset()
            return Outcome(TEMPORARY, error=f"{type(exc).__name__}: {exc}"[:1000], provider_fault=True)
        if not sent:
            return Outcome(TEMPORARY, error="the mail backend reported the message not sent")
        status = getattr(email, "anymail_status", None)
        provider_id = getattr(status, "message_id", None) or message_id
        return Outcome(SENT, provider_id=str(provider_id)[:200])


def compose_mime(*, from_email: str, to: str, subject: str, text: str, html: str, headers: dict[str, str]) -> bytes:
    """A MIME message (text, plus HTML as an alternative when there is one) as SMTP-ready bytes."""

    def body(content: str, subtype: str) -> str:
        encoded = base64.encodebytes(content.encode()).decode().replace("\n", "\r\n")
        return f"Content-Type: text/{subtype}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{encoded}"

    subject_header = subject if subject.isascii() else Header(subject, "utf-8").encode()
    lines = [
        f"From: {from_email}",
        f"To: {to}",
        f"Subject: {subject_header}",
        f"Date: {formatdate(usegmt=True)}",
        "MIME-Version: 1.0",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    if html:
        boundary = f"=_console_{uuid.uuid4().hex}"
        lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
        parts = f"--{boundary}\r\n{body(text, 'plain')}--{boundary}\r\n{body(html, 'html')}--{boundary}--\r\n"
        return ("\r\n".join(lines) + "\r\n\r\n" + parts).encode()
    return ("\r\n".join(lines) + "\r\n" + body(text, "plain")).encode()


_kept = threading.local()
# Bumped when the mail settings change (tests do), so no thread sends through a connection to the old server.
_generation = [0]


@receiver(setting_changed)
def _mail_settings_changed(*, setting: str, **kwargs: object) -> None:
    if setting == "MAILERS" or setting.startswith("EMAIL_"):
        _generation[0] += 1


def thread_sessions() -> dict[str, EmailSession]:
    """This worker thread's email sessions by mailer alias, kept from one task to the next."""
    sessions: dict[str, EmailSession] | None = getattr(_kept, "sessions", None)
    if sessions is None or getattr(_kept, "generation", None) != _generation[0]:
        for session in (sessions or {}).values():
            session.close()
        sessions = _kept.sessions = {}
        _kept.generation = _generation[0]
    return sessions
