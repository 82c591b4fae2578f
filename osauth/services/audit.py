"""Audit events: who did what, to whom, when and from where."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Select, false, or_, select

from ..extensions import db
from ..models import AuditEvent, User
from .text import escape_like, login_key


def record(kind: str, *, actor: User | None = None, subject: User | None = None,
           ip: str | None = None, **detail: Any) -> None:
    """Stage an event in the current transaction, so it lands with the change it describes."""
    db.session.add(AuditEvent(
        kind=kind,
        actor_id=actor.id if actor else None,
        subject_id=subject.id if subject else None,
        ip=ip,
        detail=json.dumps(detail, sort_keys=True) if detail else "",
    ))


def events_query(*, login_name: str = "", kind: str = "") -> Select:
    """Newest first; ``login_name`` matches the actor or the subject, ``kind`` its start
    (e.g. "otp_reset")."""
    query = select(AuditEvent).order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
    if login_name:
        user_id = db.session.scalar(select(User.id).where(User.login_key == login_key(login_name)))
        if user_id is None:  # (== None would match every event without a subject)
            return query.where(false())
        query = query.where(or_(AuditEvent.subject_id == user_id, AuditEvent.actor_id == user_id))
    if kind:
        query = query.where(AuditEvent.kind.like(f"{escape_like(kind)}%", escape="\\"))
    return query
