"""The system-wide two-factor switch and what must hold before it turns on."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from ..extensions import db
from ..models import User
from . import audit
from .email_settings import email_fingerprint
from .errors import TwoFactorNotReady, ValidationError
from .mail import mail_configured
from .settings import get_setting, save_settings, set_setting
from .text import has_control_characters

KEY = "authentication.two_factor_enabled"


def missing_for_two_factor() -> list[str]:
    """What still has to be done before 2FA may be enabled; empty when ready.

    Users enrol through emails, so email must demonstrably work first."""
    missing = []
    if not (mail_configured() and get_setting("email.smtp_port")):
        missing.append("the email configuration (SMTP host, SMTP port and sender address)")
    elif get_setting("email.verified_fingerprint") != email_fingerprint():
        missing.append("a successful test email since the email settings last changed")
    if not get_setting("notifications.system_enabled"):
        missing.append("system-level email notifications turned on")
    return missing


@dataclass(frozen=True)
class Impact:
    without_authenticator: int
    notifications_off: int
    admin_without_authenticator: bool


def enable_impact(admin: User | None) -> Impact:
    """Who would be stopped at the login page once 2FA is on (active users only)."""
    active = User.active.is_(True)
    without = db.session.scalar(select(func.count(User.id)).where(
        active, User.otp_secret.is_(None), User.otp_pending_secret.is_(None)))
    muted = db.session.scalar(select(func.count(User.id)).where(
        active, User.email_notifications.is_(False)))
    return Impact(without, muted, admin is not None and not admin.has_authenticator)


def enable_two_factor(*, actor: User | None, via: str, ip: str | None = None) -> None:
    """Turn 2FA on; TwoFactorNotReady names what is missing."""
    missing = missing_for_two_factor()
    if missing:
        raise TwoFactorNotReady("2FA cannot be enabled yet. Missing: " + "; ".join(missing) + ".")
    if get_setting(KEY):
        return
    set_setting(KEY, True)
    audit.record("two_factor.enabled", actor=actor, ip=ip, via=via)
    db.session.commit()


def disable_two_factor(*, actor: User | None, via: str, ip: str | None = None) -> None:
    if not get_setting(KEY):
        return
    set_setting(KEY, False)
    audit.record("two_factor.disabled", actor=actor, ip=ip, via=via)
    db.session.commit()


def save_policy(*, issuer: str, drift: int, lockout_threshold: int, lockout_minutes: int,
                reset_link_minutes: int, actor: User, ip: str | None = None) -> None:
    """The OTP policy; ValidationError says what is wrong and nothing is saved then."""
    issuer = issuer.strip()
    if not issuer or len(issuer) > 60 or has_control_characters(issuer) or ":" in issuer:
        raise ValidationError("The account name must be 1 to 60 characters, without a colon.")
    save_settings({
        "authentication.otp_issuer": issuer,
        "authentication.otp_drift_steps": drift,
        "authentication.lockout_threshold": lockout_threshold,
        "authentication.lockout_minutes": lockout_minutes,
        "authentication.reset_link_minutes": reset_link_minutes,
    }, actor=actor, ip=ip, event="settings.authentication_changed")
