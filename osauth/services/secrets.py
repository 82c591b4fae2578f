"""Encryption at rest for OTP secrets and the SMTP password (Fernet, rotatable keys)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app


def derive_development_key(secret_key: str) -> str:
    """A Fernet key derived from the app's secret key, for development only."""
    digest = hashlib.sha256(b"osauth otp encryption key\x00" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def parse_keys(value: str) -> list[str]:
    """Split ``OSAUTH_OTP_ENCRYPTION_KEYS``; raise ValueError naming a bad key's position."""
    keys = [k.strip() for k in value.split(",") if k.strip()]
    if not keys:
        raise ValueError("OSAUTH_OTP_ENCRYPTION_KEYS holds no key")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ValueError(
                f"OSAUTH_OTP_ENCRYPTION_KEYS: key {position} is not a Fernet key "
                "(32 url-safe base64-encoded bytes)"
            ) from None
    return keys


def _fernet() -> MultiFernet:
    # The first key encrypts; all of them decrypt, so a new key can be put in front.
    return MultiFernet([Fernet(k) for k in current_app.config["OTP_ENCRYPTION_KEY_LIST"]])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise RuntimeError("a stored secret cannot be decrypted with the configured keys") from None


def reencrypt(token: str) -> str:
    """Re-encrypt under the first key (key rotation)."""
    return _fernet().rotate(token.encode()).decode()
