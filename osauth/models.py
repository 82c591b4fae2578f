"""Database tables. Times are naive UTC so SQLite and PostgreSQL behave alike."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

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
        return self.otp_secret is not None


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
        Index("ix_audit_events_kind_created_at", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(50))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    ip: Mapped[str | None] = mapped_column(String(45))
    detail: Mapped[str] = mapped_column(Text, default="")
