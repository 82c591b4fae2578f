"""Re-encrypt every stored secret under the first key of OSAUTH_OTP_ENCRYPTION_KEYS.

Rotation: put a new key in front of the list and restart, run ``flask --app wsgi
rotate-keys``, then drop the old key and restart again."""

from __future__ import annotations

from sqlalchemy import select

from ..extensions import db
from ..models import OutboxMessage, Setting, User
from . import audit
from .secrets import reencrypt

ENCRYPTED_SETTINGS = ("email.smtp_password",)


def rotate_encryption_keys(*, batch: int = 500) -> dict[str, int]:
    counts = {"otp secrets": 0, "settings": 0, "queued emails": 0}
    last_id = 0
    while True:  # users in batches, so 100,000 of them do not sit in memory at once
        users = db.session.scalars(select(User).where(User.id > last_id).order_by(User.id)
                                   .limit(batch)).all()
        if not users:
            break
        for user in users:
            for column in ("otp_secret", "otp_pending_secret"):
                token = getattr(user, column)
                if token:
                    setattr(user, column, reencrypt(token))
                    counts["otp secrets"] += 1
        last_id = users[-1].id
        db.session.commit()
    for row in db.session.scalars(select(Setting).where(Setting.key.in_(ENCRYPTED_SETTINGS))):
        token = row.value.strip('"')
        if token:
            row.value = f'"{reencrypt(token)}"'
            counts["settings"] += 1
    for message in db.session.scalars(select(OutboxMessage).where(
            OutboxMessage.payload.is_not(None))):
        message.payload = reencrypt(message.payload)
        counts["queued emails"] += 1
    audit.record("keys.rotated", **counts)
    db.session.commit()
    return counts
