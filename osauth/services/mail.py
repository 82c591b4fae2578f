"""Email through a transactional outbox.

``queue_email`` writes the message in the caller's transaction, so it exists exactly when the
change that caused it does. ``deliver_pending`` (a thread in development, ``flask mail
deliver`` in production) sends it, retrying with backoff while the relay is down. On
PostgreSQL each message is claimed with ``FOR UPDATE SKIP LOCKED`` and stays locked until it
is marked sent, so several workers never send one message twice.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Iterable
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid

from flask import current_app, render_template
from sqlalchemy import select

from ..extensions import db
from ..models import OutboxMessage, User
from . import audit, clock
from .secrets import decrypt, encrypt
from .settings import get_setting

log = logging.getLogger(__name__)

SMTP_TIMEOUT_SECONDS = 20
MESSAGE_REFUSED = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused,
                   smtplib.SMTPDataError)
MAX_ATTEMPTS = 20
RETRY_CAP_SECONDS = 15 * 60


class MailNotConfigured(RuntimeError):
    """No SMTP host or sender is set."""


def mail_configured() -> bool:
    return bool(get_setting("email.smtp_host") and get_setting("email.sender"))


def notifications_allowed(user: User) -> bool:
    """System-level and user-level email notifications both have to be on."""
    return get_setting("notifications.system_enabled") and user.email_notifications


def build_message(recipient: str, template: str, subject: str, *,
                  images: Iterable[tuple[str, bytes]] = (), **context) -> EmailMessage:
    """Text and HTML from ``templates/email/<template>.txt|.html``; each image goes into a
    multipart/related part under its Content-ID, for ``<img src="cid:…">`` (mail clients
    strip ``data:`` images). The standard library picks 7-bit-safe encodings."""
    sender = get_setting("email.sender")
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = formatdate(clock.time())
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(render_template(f"email/{template}.txt", **context))
    message.add_alternative(render_template(f"email/{template}.html", **context), subtype="html")
    html = message.get_payload()[1]
    for cid, png in images:
        html.add_related(png, maintype="image", subtype="png", cid=f"<{cid}>",
                         filename=f"{cid}.png", disposition="inline")
    return message


def queue_email(user: User, template: str, subject: str, *, ip: str | None = None,
                images: Iterable[tuple[str, bytes]] = (), **context) -> bool:
    """Stage an email to ``user`` in the current transaction; False when notifications are off."""
    if not notifications_allowed(user):
        audit.record("mail.suppressed", subject=user, ip=ip, template=template)
        return False
    if not mail_configured():
        audit.record("mail.not_configured", subject=user, ip=ip, template=template)
        return False
    message = build_message(user.email, template, subject, images=images, user=user, **context)
    db.session.add(OutboxMessage(
        kind=template, sender=message["From"], recipient=user.email,
        payload=encrypt(message.as_string(policy=SMTP)), next_attempt_at=clock.utcnow(),
    ))
    return True


def smtp_password() -> str:
    stored = get_setting("email.smtp_password")
    return decrypt(stored) if stored else str(current_app.config.get("MAIL_PASSWORD") or "")


def open_smtp() -> smtplib.SMTP:
    """A connection to the configured relay, with verified TLS and a timeout."""
    if not mail_configured():
        raise MailNotConfigured("Email is not configured: set the SMTP host and sender address.")
    host = get_setting("email.smtp_host")
    port = get_setting("email.smtp_port")
    security = get_setting("email.connection_security")
    context = ssl.create_default_context()
    if security == "ssl":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=SMTP_TIMEOUT_SECONDS,
                                              context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_SECONDS)
    try:
        if security == "starttls":
            smtp.starttls(context=context)
        username = get_setting("email.smtp_username")
        if username:
            smtp.login(username, smtp_password())
    except BaseException:
        smtp.close()
        raise
    return smtp


def retry_delay(attempts: int) -> timedelta:
    base = current_app.config.get("MAIL_RETRY_BASE_SECONDS", 30)
    return timedelta(seconds=min(base * 2 ** (attempts - 1), RETRY_CAP_SECONDS))


def _claim_next(now: datetime) -> OutboxMessage | None:
    return db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()


def _postpone(row: OutboxMessage, error: Exception, now: datetime) -> None:
    row.attempts += 1
    row.last_error = f"{type(error).__name__}: {error}"[:500]
    if row.attempts >= MAX_ATTEMPTS:
        row.status = "failed"
        row.payload = None
        log.error("mail %s to %s given up after %d attempts", row.id, row.recipient, row.attempts)
    else:
        row.next_attempt_at = now + retry_delay(row.attempts)
        log.warning("mail %s to %s not sent (%s); retrying", row.id, row.recipient,
                    row.last_error)


def deliver_pending(*, limit: int = 100) -> int:
    """Send up to ``limit`` due messages; return how many were sent.

    A relay that cannot be reached postpones the message and ends the pass."""
    sent = 0
    smtp: smtplib.SMTP | None = None
    try:
        for _ in range(limit):
            now = clock.utcnow()
            row = _claim_next(now)
            if row is None:
                break
            try:
                payload = decrypt(row.payload or "")
            except RuntimeError as error:  # its key was dropped: it can never be sent
                row.status, row.payload, row.last_error = "failed", None, str(error)
                log.error("mail %s to %s dropped: %s", row.id, row.recipient, error)
                db.session.commit()
                continue
            try:
                if smtp is None:
                    smtp = open_smtp()
                smtp.sendmail(row.sender, [row.recipient], payload)
            except MESSAGE_REFUSED as error:  # this message only: go on with the next
                _postpone(row, error, now)
                db.session.commit()
                continue
            except (OSError, smtplib.SMTPException, MailNotConfigured) as error:
                _postpone(row, error, now)  # the relay is unreachable: end the pass
                db.session.commit()
                break
            row.status, row.sent_at, row.payload = "sent", now, None
            db.session.commit()
            sent += 1
    finally:
        db.session.rollback()
        if smtp is not None:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()
    return sent

