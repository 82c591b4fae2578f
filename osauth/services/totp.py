"""TOTP (RFC 6238) codes with pyotp, each accepted at most once."""

from __future__ import annotations

import enum
import hashlib
import hmac

import pyotp
from sqlalchemy import or_, update

from ..extensions import db
from ..models import User
from . import clock
from .secrets import decrypt
from .settings import get_setting

# The parameters every authenticator app supports; stored with each credential.
DEFAULT_ALGORITHM = "SHA1"
DEFAULT_DIGITS = 6
DEFAULT_PERIOD = 30
ALGORITHMS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


def new_secret() -> str:
    """A base32 secret of 160 random bits (pyotp draws it from ``secrets``)."""
    return pyotp.random_base32(length=32)


def code_at_step(secret: str, step: int, *, algorithm: str = DEFAULT_ALGORITHM,
                 digits: int = DEFAULT_DIGITS) -> str:
    return pyotp.TOTP(secret, digits=digits, digest=ALGORITHMS[algorithm]).generate_otp(step)


def current_code(secret: str, *, now: float | None = None, algorithm: str = DEFAULT_ALGORITHM,
                 digits: int = DEFAULT_DIGITS, period: int = DEFAULT_PERIOD) -> str:
    now = clock.time() if now is None else now
    return code_at_step(secret, int(now // period), algorithm=algorithm, digits=digits)


def matching_step(secret: str, code: str, *, now: float, drift: int, after_step: int | None,
                  algorithm: str = DEFAULT_ALGORITHM, digits: int = DEFAULT_DIGITS,
                  period: int = DEFAULT_PERIOD) -> int | None:
    """The time step within ``drift`` of ``now`` whose code is ``code``, if later than
    ``after_step``. Every step in the window is computed and compared in constant time."""
    current = int(now // period)
    found = None
    for step in range(current - drift, current + drift + 1):
        candidate = code_at_step(secret, step, algorithm=algorithm, digits=digits)
        matches = hmac.compare_digest(candidate.encode(), code.encode())
        if matches and found is None and (after_step is None or step > after_step):
            found = step
    return found


def claim_step(user_id: int, step: int) -> bool:
    """Record ``step`` as the last accepted one unless an equal or later one already was.

    One conditional UPDATE: of two transactions claiming the same step, the second waits on
    the row lock, re-reads the row and updates nothing."""
    result = db.session.execute(
        update(User)
        .where(User.id == user_id, or_(User.otp_last_step.is_(None), User.otp_last_step < step))
        .values(otp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def activate_pending(user_id: int, pending: str, step: int) -> bool:
    """Make the pending secret the credential, in one conditional UPDATE like ``claim_step``;
    the old secret is gone from then on."""
    result = db.session.execute(
        update(User)
        .where(User.id == user_id, User.otp_pending_secret == pending,
               or_(User.otp_last_step.is_(None), User.otp_last_step < step))
        .values(otp_secret=pending, otp_pending_secret=None, otp_pending_since=None,
                otp_algorithm=DEFAULT_ALGORITHM, otp_digits=DEFAULT_DIGITS,
                otp_period=DEFAULT_PERIOD, otp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


class Accepted(enum.Enum):
    CURRENT = "current"  # the enrolled authenticator
    NEW = "new"  # the pending one, which has just taken over


def verify_code(user: User, code: str, *, now: float | None = None) -> Accepted | None:
    """Which authenticator ``code`` came from, if it is valid and not used before.

    A pending secret (from a reset) is tried first; its first valid code activates it. The
    caller commits, which releases the row lock taken by the claim."""
    now = clock.time() if now is None else now
    drift = get_setting("authentication.otp_drift_steps")
    if user.otp_pending_secret is not None:
        step = matching_step(decrypt(user.otp_pending_secret), code, now=now, drift=drift,
                             after_step=user.otp_last_step)
        if step is not None and activate_pending(user.id, user.otp_pending_secret, step):
            return Accepted.NEW
    if user.otp_secret is None:
        return None
    step = matching_step(
        decrypt(user.otp_secret), code, now=now, drift=drift, after_step=user.otp_last_step,
        algorithm=user.otp_algorithm, digits=user.otp_digits, period=user.otp_period,
    )
    if step is not None and claim_step(user.id, step):
        return Accepted.CURRENT
    return None
