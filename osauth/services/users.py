"""Accounts: creation, password checks, sign-in with the second factor, and lockout."""

from __future__ import annotations

import unicodedata
from datetime import timedelta
from functools import cache

import email_validator
from flask import current_app
from sqlalchemy import case, or_, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from ..models import EMAIL_MAX, LOGIN_NAME_MAX, NAME_MAX, User
from . import audit, clock
from .errors import (
    AccountInactive,
    AccountLocked,
    EnrolmentRequired,
    InvalidCredentials,
    ValidationError,
)
from .mail import queue_email
from .settings import get_setting
from .text import has_control_characters, login_key
from .totp import Accepted, verify_code

PASSWORD_MIN = 8
PASSWORD_MAX = 1024


class CodeRequired(InvalidCredentials):
    """2FA is on and no code was given; raised before the password is looked at."""


def validate_login_name(login_name: str) -> str:
    login_name = unicodedata.normalize("NFC", login_name.strip())
    if not login_name:
        raise ValidationError("The login name is empty.")
    if len(login_name) > LOGIN_NAME_MAX:
        raise ValidationError(f"The login name is longer than {LOGIN_NAME_MAX} characters.")
    if has_control_characters(login_name) or any(ch.isspace() for ch in login_name):
        raise ValidationError("The login name may not contain spaces or control characters.")
    return login_name


def validate_email(email: str) -> str:
    if len(email) > EMAIL_MAX:
        raise ValidationError(f"The email address is longer than {EMAIL_MAX} characters.")
    try:
        return email_validator.validate_email(email.strip(), check_deliverability=False).normalized
    except email_validator.EmailNotValidError as error:
        raise ValidationError(f"The email address is not valid: {error}") from None


def validate_name(name: str, what: str) -> str:
    name = name.strip()
    if len(name) > NAME_MAX or has_control_characters(name):
        raise ValidationError(f"The {what} must be at most {NAME_MAX} printable characters.")
    return name


def validate_password(password: str) -> str:
    if not password:
        raise ValidationError("The password is empty.")
    if len(password) < PASSWORD_MIN:
        raise ValidationError(f"The password must have at least {PASSWORD_MIN} characters.")
    if len(password) > PASSWORD_MAX:
        raise ValidationError(f"The password must have at most {PASSWORD_MAX} characters.")
    return password


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


@cache
def _dummy_hash(method: str) -> str:
    return generate_password_hash("not anyone's password", method=method)


def spend_one_hash(password: str) -> None:
    """Cost the same as checking a real password, so unknown names are not faster."""
    check_password_hash(_dummy_hash(current_app.config["PASSWORD_HASH_METHOD"]), password)


def find_user(login_name: str) -> User | None:
    return db.session.scalar(select(User).where(User.login_key == login_key(login_name)))


def create_user(login_name: str, email: str, password: str, *, first_name: str = "",
                last_name: str = "", super_admin: bool = False, actor: User | None = None,
                ip: str | None = None) -> User:
    """Create and commit a user; ValidationError says what is wrong with the input."""
    login_name = validate_login_name(login_name)
    email = validate_email(email)
    first_name = validate_name(first_name, "first name")
    last_name = validate_name(last_name, "last name")
    validate_password(password)
    if find_user(login_name) is not None:
        raise ValidationError(f"The login name {login_name!r} is taken.")
    user = User(login_name=login_name, login_key=login_key(login_name), email=email,
                first_name=first_name, last_name=last_name, password_hash=hash_password(password),
                is_super_admin=super_admin)
    db.session.add(user)
    db.session.flush()
    audit.record("user.created", actor=actor, subject=user, ip=ip, super_admin=super_admin)
    db.session.commit()
    return user


def _register_failure(user: User, *, factor: str, ip: str | None) -> None:
    """Count a failed password or code; lock the account when the count reaches the threshold.

    One UPDATE computes both, so concurrent failures lock exactly at the threshold. A failure
    that was in flight when a concurrent one locked the account updates no row: it is audited
    but does not count toward the next lock."""
    threshold = get_setting("authentication.lockout_threshold")
    now = clock.utcnow()
    until = now + timedelta(minutes=get_setting("authentication.lockout_minutes"))
    reaches = User.failed_attempts + 1 >= threshold
    count = db.session.execute(
        update(User)
        .where(User.id == user.id, or_(User.locked_until.is_(None), User.locked_until <= now))
        .values(failed_attempts=case((reaches, 0), else_=User.failed_attempts + 1),
                locked_until=case((reaches, until), else_=User.locked_until))
        .returning(User.failed_attempts)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    audit.record("sign_in.failed", subject=user, ip=ip, factor=factor)
    if count == 0:
        audit.record("account.locked", subject=user, ip=ip, until=until.isoformat())
        queue_email(user, "account_locked", "Your account is locked for a while", ip=ip,
                    until=until)
        db.session.commit()
        raise AccountLocked(until)
    db.session.commit()


def authenticate(login_name: str, password: str, code: str, *, ip: str | None) -> User:
    """Return the user whose login name, password and (while 2FA is on) code are right.

    Raises CodeRequired, InvalidCredentials, AccountLocked, AccountInactive or
    EnrolmentRequired. Only a right password reveals the last two."""
    two_factor = get_setting("authentication.two_factor_enabled")
    if two_factor and not code:
        raise CodeRequired()
    user = find_user(login_name)
    if user is None:
        spend_one_hash(password)
        raise InvalidCredentials()
    if user.locked_until is not None and user.locked_until > clock.utcnow():
        spend_one_hash(password)
        raise AccountLocked(user.locked_until)
    if not check_password_hash(user.password_hash, password):
        _register_failure(user, factor="password", ip=ip)
        raise InvalidCredentials()
    if not user.active:
        raise AccountInactive()
    if two_factor:
        if not user.has_authenticator:
            raise EnrolmentRequired()
        accepted = verify_code(user, code)
        if accepted is None:
            _register_failure(user, factor="otp", ip=ip)
            raise InvalidCredentials()
        if accepted is Accepted.NEW:
            db.session.refresh(user)
            audit.record("otp.activated", subject=user, ip=ip)
            queue_email(user, "authenticator_activated", "Your new authenticator is active",
                        ip=ip)
    user.failed_attempts = 0
    user.last_sign_in_at = clock.utcnow()
    audit.record("sign_in.succeeded", subject=user, ip=ip, two_factor=two_factor)
    db.session.commit()
    return user
