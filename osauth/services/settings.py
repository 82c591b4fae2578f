"""Run-time settings in one key/value table, with typed defaults.

All rows are read in one query the first time an app context asks and kept for the rest of it
(one request, one CLI command). Every worker therefore sees a change from its next request on,
with no process-wide cache to invalidate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import current_app, g
from sqlalchemy import select

from ..extensions import db
from ..models import Setting, User
from . import audit
from .errors import ValidationError


@dataclass(frozen=True)
class Spec:
    type: type
    default: Any
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    # A deployment may seed the default from its environment (OSAUTH_MAIL_SERVER → MAIL_SERVER).
    config_key: str | None = None


SPECS: dict[str, Spec] = {
    # module "authentication"
    "authentication.two_factor_enabled": Spec(bool, False),
    "authentication.otp_issuer": Spec(str, "OpenSpecimen"),
    "authentication.otp_drift_steps": Spec(int, 1, 0, 2),
    "authentication.lockout_threshold": Spec(int, 5, 1, 100),
    "authentication.lockout_minutes": Spec(int, 15, 1, 24 * 60),
    "authentication.reset_link_minutes": Spec(int, 30, 5, 24 * 60),
    # module "email"
    "email.smtp_host": Spec(str, "", config_key="MAIL_SERVER"),
    "email.smtp_port": Spec(int, 25, 1, 65535, config_key="MAIL_PORT"),
    "email.connection_security": Spec(str, "none", choices=("none", "starttls", "ssl"),
                                      config_key="MAIL_SECURITY"),
    "email.smtp_username": Spec(str, "", config_key="MAIL_USERNAME"),
    "email.smtp_password": Spec(str, ""),  # a Fernet token; MAIL_PASSWORD seeds it, see mail
    "email.sender": Spec(str, "", config_key="MAIL_DEFAULT_SENDER"),
    # The email_fingerprint() of the configuration a test email last went through with.
    "email.verified_fingerprint": Spec(str, ""),
    # module "notifications"
    "notifications.system_enabled": Spec(bool, True),
}


def _spec(key: str) -> Spec:
    try:
        return SPECS[key]
    except KeyError:
        raise KeyError(f"unknown setting {key!r}") from None


def _cache() -> dict[str, Any]:
    if "osauth_settings" not in g:
        rows = db.session.execute(select(Setting.key, Setting.value)).all()
        g.osauth_settings = {key: json.loads(value) for key, value in rows if key in SPECS}
    return g.osauth_settings


def get_setting(key: str) -> Any:
    spec = _spec(key)
    cache = _cache()
    if key in cache:
        return cache[key]
    if spec.config_key and current_app.config.get(spec.config_key) not in (None, ""):
        return coerce(key, current_app.config[spec.config_key])
    return spec.default


def coerce(key: str, value: Any) -> Any:
    """Return ``value`` as the setting's type, or raise ValidationError saying why not."""
    spec = _spec(key)
    if spec.type is bool:
        if not isinstance(value, bool):
            raise ValidationError(f"{key} must be true or false")
        return value
    if spec.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"{key} must be a whole number")
        if spec.minimum is not None and value < spec.minimum:
            raise ValidationError(f"{key} must be at least {spec.minimum}")
        if spec.maximum is not None and value > spec.maximum:
            raise ValidationError(f"{key} must be at most {spec.maximum}")
        return value
    if not isinstance(value, str):
        raise ValidationError(f"{key} must be text")
    if spec.choices and value not in spec.choices:
        raise ValidationError(f"{key} must be one of {', '.join(spec.choices)}")
    return value


def set_setting(key: str, value: Any) -> None:
    """Stage a change in the current transaction; the caller commits."""
    value = coerce(key, value)
    row = db.session.get(Setting, key)
    if row is None:
        db.session.add(Setting(key=key, value=json.dumps(value)))
    else:
        row.value = json.dumps(value)
    _cache()[key] = value


def save_settings(values: dict[str, Any], *, actor: User | None, ip: str | None,
                  event: str) -> list[str]:
    """Validate every value first, then store them all in one commit (or none); audited.
    Returns the keys that changed."""
    values = {key: coerce(key, value) for key, value in values.items()}
    changed = sorted(key for key, value in values.items() if get_setting(key) != value)
    for key, value in values.items():
        set_setting(key, value)
    audit.record(event, actor=actor, ip=ip, changed=changed)
    db.session.commit()
    return changed
