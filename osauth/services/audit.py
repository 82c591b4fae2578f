"""Audit events: who did what, to whom, when and from where."""

from __future__ import annotations

import json
from typing import Any

from ..extensions import db
from ..models import AuditEvent, User


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
