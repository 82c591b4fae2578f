"""Single-use reset links: 32 random bytes in the link, only their SHA-256 in the database."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from sqlalchemy import select, update

from ..extensions import db
from ..models import ResetToken, User
from . import audit, clock
from .errors import DomainError
from .settings import get_setting

TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # token_urlsafe(32)


class TokenInvalid(DomainError):
    """Not a link this site issued (or one superseded by a newer link)."""


class TokenExpired(DomainError):
    """The link is older than the reset-link lifetime."""


class TokenUsed(DomainError):
    """The link has been used already."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_reset_token(user: User) -> str:
    """A new link for ``user``; every older unused link dies. The caller commits."""
    now = clock.utcnow()
    db.session.execute(
        update(ResetToken)
        .where(ResetToken.user_id == user.id, ResetToken.used_at.is_(None),
               ResetToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    token = secrets.token_urlsafe(32)
    minutes = get_setting("authentication.reset_link_minutes")
    db.session.add(ResetToken(user_id=user.id, token_hash=hash_token(token), created_at=now,
                              expires_at=now + timedelta(minutes=minutes)))
    return token


def check_reset_token(token: str, *, ip: str | None = None) -> ResetToken:
    """The live token row, or the error saying why the link cannot be used. Opening an
    expired link is audited."""
    if not TOKEN_PATTERN.match(token):
        raise TokenInvalid()
    row = db.session.scalar(select(ResetToken).where(ResetToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None:
        raise TokenInvalid()
    if row.used_at is not None:
        raise TokenUsed()
    if row.expires_at <= clock.utcnow():
        audit.record("otp_reset.expired", subject=row.user, ip=ip)
        db.session.commit()
        raise TokenExpired()
    return row


def consume_reset_token(token: str, *, ip: str | None = None) -> ResetToken:
    """Mark the link used, once: of two concurrent uses exactly one gets past this."""
    row = check_reset_token(token, ip=ip)
    claimed = db.session.execute(
        update(ResetToken)
        .where(ResetToken.id == row.id, ResetToken.used_at.is_(None),
               ResetToken.revoked_at.is_(None), ResetToken.expires_at > clock.utcnow())
        .values(used_at=clock.utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        raise TokenUsed()
    return row
