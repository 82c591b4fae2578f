"""The system-wide two-factor switch."""

from __future__ import annotations

from ..extensions import db
from ..models import User
from . import audit
from .settings import get_setting, set_setting

KEY = "authentication.two_factor_enabled"


def enable_two_factor(*, actor: User | None, via: str, ip: str | None = None) -> None:
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
