"""What a super admin does to accounts. Every change is audited."""

from __future__ import annotations

from sqlalchemy import Select, func, or_, select

from ..extensions import db
from ..models import User
from . import audit, clock
from .errors import ValidationError
from .text import escape_like, login_key

STATES = ("enrolled", "pending", "none")


def users_query(*, text: str = "", state: str = "", locked: bool = False,
                notifications_off: bool = False) -> Select:
    """Users matching the filters, by login name. ``text`` matches the start of the login
    name or email, or any part of the name."""
    query = select(User).order_by(User.login_key)
    text = text.strip()
    if text:
        key = escape_like(login_key(text))
        query = query.where(or_(
            User.login_key.like(f"{key}%", escape="\\"),
            func.lower(User.email).like(f"{key}%", escape="\\"),
            func.lower(User.first_name + " " + User.last_name).like(f"%{key}%", escape="\\"),
        ))
    if state == "enrolled":
        query = query.where(User.otp_secret.is_not(None), User.otp_pending_secret.is_(None))
    elif state == "pending":
        query = query.where(User.otp_pending_secret.is_not(None))
    elif state == "none":
        query = query.where(User.otp_secret.is_(None), User.otp_pending_secret.is_(None))
    if locked:
        query = query.where(User.locked_until > clock.utcnow())
    if notifications_off:
        query = query.where(User.email_notifications.is_(False))
    return query


def is_locked(user: User) -> bool:
    return user.locked_until is not None and user.locked_until > clock.utcnow()


def _other_active_super_admins(user: User) -> int:
    return db.session.scalar(select(func.count(User.id)).where(
        User.is_super_admin, User.active, User.id != user.id))


def set_active(user: User, active: bool, *, actor: User, ip: str | None) -> None:
    if not active:
        if user.id == actor.id:
            raise ValidationError("You cannot deactivate your own account.")
        if user.is_super_admin and _other_active_super_admins(user) == 0:
            raise ValidationError("The last active super admin cannot be deactivated.")
        user.session_epoch += 1  # signed out everywhere at once
    user.active = active
    audit.record("user.reactivated" if active else "user.deactivated", actor=actor,
                 subject=user, ip=ip)
    db.session.commit()


def unlock(user: User, *, actor: User, ip: str | None) -> None:
    user.locked_until = None
    user.failed_attempts = 0
    audit.record("account.unlocked", actor=actor, subject=user, ip=ip)
    db.session.commit()


def set_notifications(user: User, enabled: bool, *, actor: User, ip: str | None) -> None:
    """User-level email notifications; a user may switch their own, an admin anyone's."""
    user.email_notifications = enabled
    audit.record("notifications.user_changed", actor=actor, subject=user, ip=ip,
                 enabled=enabled)
    db.session.commit()
