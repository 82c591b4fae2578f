"""The email settings a super admin edits, and the test email that vouches for them."""

from __future__ import annotations

import hashlib
import json
import smtplib

from ..extensions import db
from ..models import User
from . import audit
from .errors import DomainError, ValidationError
from .mail import MailNotConfigured, build_message, open_smtp
from .secrets import encrypt
from .settings import get_setting, save_settings, set_setting
from .users import validate_email

EMAIL_KEYS = ("email.smtp_host", "email.smtp_port", "email.connection_security",
              "email.smtp_username", "email.smtp_password", "email.sender")


def email_fingerprint() -> str:
    """Changes whenever any email setting does, so a test email vouches for one configuration."""
    values = json.dumps([get_setting(key) for key in EMAIL_KEYS])
    return hashlib.sha256(values.encode()).hexdigest()


class EmailTestFailed(DomainError):
    """The relay refused or could not be reached; the message says what it answered."""


def send_test_email(admin: User, *, ip: str | None = None) -> None:
    """Send a test email to ``admin`` now, bypassing the outbox, so the relay's answer can be
    shown. Success records the configuration as verified."""
    message = build_message(admin.email, "test_email", "osauth test email", user=admin)
    try:
        smtp = open_smtp()
        try:
            smtp.send_message(message)
        finally:
            smtp.close()
    except (OSError, smtplib.SMTPException, MailNotConfigured) as error:
        audit.record("email.test_failed", actor=admin, ip=ip, error=str(error)[:200])
        db.session.commit()
        raise EmailTestFailed(describe_smtp_error(error)) from None
    set_setting("email.verified_fingerprint", email_fingerprint())
    audit.record("email.test_sent", actor=admin, ip=ip, to=admin.email)
    db.session.commit()


def describe_smtp_error(error: Exception) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        text = error.smtp_error.decode(errors="replace") if isinstance(
            error.smtp_error, bytes) else str(error.smtp_error)
        return f"The relay answered {error.smtp_code}: {text}"
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return f"The relay refused the recipient: {error.recipients}"
    if isinstance(error, MailNotConfigured):
        return str(error)
    return f"The relay could not be reached: {error}"


def save_email_settings(*, host: str, port: int, security: str, username: str,
                        password: str | None, sender: str, notifications: bool,
                        actor: User, ip: str | None = None) -> None:
    """Validate every value, then store them all in one commit (or none).

    ``password`` None keeps the stored one; it is kept encrypted and never shown again."""
    host = host.strip()
    if not host or len(host) > 253 or any(ch.isspace() for ch in host):
        raise ValidationError("The SMTP host must be a host name or address without spaces.")
    sender = validate_email(sender) if sender.strip() else ""
    if not sender:
        raise ValidationError("The sender address is empty.")
    values = {
        "email.smtp_host": host,
        "email.smtp_port": port,
        "email.connection_security": security,
        "email.smtp_username": username.strip(),
        "email.sender": sender,
        "notifications.system_enabled": notifications,
    }
    if password is not None:
        values["email.smtp_password"] = encrypt(password) if password else ""
    save_settings(values, actor=actor, ip=ip, event="settings.email_changed")
