"""Configuration: defaults, then ``OSAUTH_*`` environment variables, then the caller's mapping."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from .services.secrets import derive_development_key, parse_keys

DEFAULTS: dict[str, Any] = {
    "BASE_URL": "http://127.0.0.1:5000",
    "PASSWORD_HASH_METHOD": "scrypt",
    "LOGIN_RATE_LIMIT": "10 per minute; 100 per hour",
    "OTP_RESET_RATE_LIMIT_PER_NAME": "5 per hour",
    "OTP_RESET_RATE_LIMIT_PER_IP": "20 per hour",
    "RESET_LINK_RATE_LIMIT": "30 per hour",  # token guesses, per IP
    "MAIL_RETRY_BASE_SECONDS": 30,
    "RATELIMIT_STORAGE_URI": "memory://",
    "RATELIMIT_HEADERS_ENABLED": True,
    # Redis down: count in each process's memory (logged) rather than refuse every sign-in;
    # the per-account lockout, kept in the database, still holds across workers.
    "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
    "TRUSTED_PROXIES": 0,
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "MAX_FORM_MEMORY_SIZE": 64 * 1024,
    "MAX_FORM_PARTS": 100,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_NAME": "osauth_session",
    "PERMANENT_SESSION_LIFETIME": 12 * 60 * 60,
    "WTF_CSRF_TIME_LIMIT": None,  # the token is bound to the session, which expires itself
    "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
}


class ConfigError(RuntimeError):
    """The deployment is missing something; the message names the variable to set."""


def load_config(app: Flask, overrides: Mapping[str, Any] | None) -> None:
    app.config.update(DEFAULTS)
    app.config.from_prefixed_env("OSAUTH")
    if overrides:
        app.config.update(overrides)
    development = bool(app.config.get("DEVELOPMENT", app.debug or app.testing))
    app.config["DEVELOPMENT"] = development
    if not ("SESSION_COOKIE_SECURE" in (overrides or {})
            or "OSAUTH_SESSION_COOKIE_SECURE" in os.environ):
        app.config["SESSION_COOKIE_SECURE"] = not development

    database_url = app.config.get("DATABASE_URL") or (
        f"sqlite:///{Path(app.instance_path) / 'osauth.sqlite'}"
    )
    app.config.setdefault("SQLALCHEMY_DATABASE_URI", database_url)
    app.config.setdefault("DEV_MAIL_DIR", str(Path(app.instance_path) / "caught-mail"))

    if not app.config.get("SECRET_KEY"):
        if not development:
            raise ConfigError("OSAUTH_SECRET_KEY is not set: set it to a long random string.")
        app.config["SECRET_KEY"] = _development_secret_key(Path(app.instance_path))

    keys = app.config.get("OTP_ENCRYPTION_KEYS")
    if keys:
        try:
            app.config["OTP_ENCRYPTION_KEY_LIST"] = parse_keys(str(keys))
        except ValueError as error:
            raise ConfigError(str(error)) from None
    elif development:
        app.config["OTP_ENCRYPTION_KEY_LIST"] = [derive_development_key(app.config["SECRET_KEY"])]
    else:
        raise ConfigError(
            "OSAUTH_OTP_ENCRYPTION_KEYS is not set: set it to one or more comma-separated keys "
            "made by `python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'`."
        )


def _development_secret_key(instance: Path) -> str:
    """Generate the key once and keep it, so development sessions survive a restart."""
    path = instance / "secret_key"
    if not path.exists():
        instance.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
