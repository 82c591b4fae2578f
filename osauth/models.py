"""Database tables. Times are naive UTC so SQLite and PostgreSQL behave alike."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db
from .services.clock import utcnow

LOGIN_NAME_MAX = 150
EMAIL_MAX = 254
NAME_MAX = 100


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    login_name: Mapped[str] = mapped_column(String(LOGIN_NAME_MAX))
    # NFKC + casefold of login_name: the unique key that makes login names case-insensitive.
    login_key: Mapped[str] = mapped_column(String(LOGIN_NAME_MAX), unique=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX))
    first_name: Mapped[str] = mapped_column(String(NAME_MAX), default="")
    last_name: Mapped[str] = mapped_column(String(NAME_MAX), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    is_super_admin: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=True)
    email_notifications: Mapped[bool] = mapped_column(default=True)

    # The TOTP credential: Fernet tokens, never the plain secret.
    otp_secret: Mapped[str | None] = mapped_column(Text)
    otp_algorithm: Mapped[str] = mapped_column(String(10), default="SHA1")
    otp_digits: Mapped[int] = mapped_column(default=6)
    otp_period: Mapped[int] = mapped_column(default=30)
    otp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    otp_pending_secret: Mapped[str | None] = mapped_column(Text)
    otp_pending_since: Mapped[datetime | None]

    failed_attempts: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    # Part of the session id: bumping it signs the user out everywhere.
    session_epoch: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_sign_in_at: Mapped[datetime | None]

    @property
    def is_active(self) -> bool:
        return self.active

    def get_id(self) -> str:
        return f"{self.id}:{self.session_epoch}"

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or self.login_name

    @property
    def has_authenticator(self) -> bool:
        """An enrolled secret, or a pending one whose first code will enrol it."""
        return self.otp_secret is not None or self.otp_pending_secret is not None

    @property
    def two_factor_state(self) -> str:
        if self.otp_pending_secret is not None:
            return "pending"
        return "enrolled" if self.otp_secret is not None else "none"


class Setting(db.Model):
    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)  # JSON
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditEvent(db.Model):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_created_at", "created_at"),
        Index("ix_audit_events_subject_id_created_at", "subject_id", "created_at"),
        Index("ix_audit_events_actor_id_created_at", "actor_id", "created_at"),
        Index("ix_audit_events_kind_created_at", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(50))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    ip: Mapped[str | None] = mapped_column(String(45))
    detail: Mapped[str] = mapped_column(Text, default="")


class ResetToken(db.Model):
    """A link to reset a user's OTP secret. Only the SHA-256 of the token is stored."""

    __tablename__ = "reset_tokens"
    __table_args__ = (Index("ix_reset_tokens_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]  # a newer link was issued

    user: Mapped[User] = relationship()


class OtpResetRequest(db.Model):
    """A typed login name waiting for the worker. The request page only writes this row,
    whether or not the name exists, so both cases take the same time; the worker looks the
    name up and mails the link."""

    __tablename__ = "otp_reset_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    login_key: Mapped[str] = mapped_column(String(LOGIN_NAME_MAX))
    ip: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxMessage(db.Model):
    """An email written in the transaction that caused it and delivered by a worker.

    The MIME message is encrypted (it may carry an OTP secret) and erased once sent."""

    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_messages_status_next_attempt_at", "status",
                            "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(50))
    sender: Mapped[str] = mapped_column(String(EMAIL_MAX))
    recipient: Mapped[str] = mapped_column(String(EMAIL_MAX))
    payload: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
