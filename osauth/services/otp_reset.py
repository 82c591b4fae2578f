"""Enrolment and reset of the OTP secret through two emails.

1. ``request_otp_reset``: a link to the account's address (or nothing, silently).
2. ``reset_otp_secret``: the link's POST makes a new *pending* secret and mails it. The old
   authenticator keeps working until the new one has been used once (see ``totp``), so a
   reset somebody else asked for can neither lock the owner out nor take the account over.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..models import OtpResetRequest, User
from . import audit, clock
from .links import external_url
from .mail import queue_email
from .qr import provisioning_uri, qr_png
from .secrets import encrypt
from .settings import get_setting
from .text import login_key
from .throttle import allow
from .tokens import TokenInvalid, consume_reset_token, issue_reset_token
from .totp import new_secret


def request_otp_reset(login_name: str, *, ip: str | None) -> None:
    """Queue the request for the worker, unless the name or the address asks too often.

    The database is not asked whether the name exists: both paths write one row and commit,
    so the answer and its timing are the same for every name."""
    key = login_key(login_name)
    per_name = allow("otp-reset-name", key, current_app.config["OTP_RESET_RATE_LIMIT_PER_NAME"])
    per_ip = allow("otp-reset-ip", ip or "-", current_app.config["OTP_RESET_RATE_LIMIT_PER_IP"])
    if per_name and per_ip:
        db.session.add(OtpResetRequest(login_key=key, ip=ip))
    else:
        audit.record("otp_reset.throttled", ip=ip)
    db.session.commit()


def process_reset_requests(*, limit: int = 100) -> int:
    """Worker: mail a link for each queued request whose account exists and is active.

    Each request is claimed with FOR UPDATE SKIP LOCKED (PostgreSQL) and handled in one
    transaction with the token and the email it causes."""
    handled = 0
    for _ in range(limit):
        request = db.session.scalars(
            select(OtpResetRequest).order_by(OtpResetRequest.id).limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if request is None:
            break
        user = db.session.scalar(select(User).where(User.login_key == request.login_key))
        if user is None or not user.active:
            audit.record("otp_reset.requested", ip=request.ip, known=False)
        else:
            token = issue_reset_token(user)
            queue_email(user, "reset_link", "Reset your OTP secret code", ip=request.ip,
                        link=external_url("otp_reset.confirm", token=token),
                        minutes=get_setting("authentication.reset_link_minutes"))
            audit.record("otp_reset.requested", subject=user, ip=request.ip, known=True)
        db.session.delete(request)
        db.session.commit()
        handled += 1
    return handled


def force_otp_reset(user: User, *, actor: User, ip: str | None) -> bool:
    """Admin: revoke the user's authenticator at once, sign them out everywhere, and mail a
    reset link. Returns False when the user's notifications keep the link from going out."""
    user.otp_secret = None
    user.otp_pending_secret = None
    user.otp_pending_since = None
    user.session_epoch += 1
    token = issue_reset_token(user)
    mailed = queue_email(user, "reset_link", "Reset your OTP secret code", ip=ip,
                         link=external_url("otp_reset.confirm", token=token),
                         minutes=get_setting("authentication.reset_link_minutes"),
                         forced_by=actor)
    audit.record("otp.force_reset", actor=actor, subject=user, ip=ip, mailed=mailed)
    db.session.commit()
    return mailed


def group_secret(secret: str) -> str:
    """'ABCD EFGH …': easier to type into "Enter a setup key"."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def reset_otp_secret(token: str, *, ip: str | None) -> User:
    """Use the link: give the user a pending secret and mail it with its QR code."""
    user = consume_reset_token(token, ip=ip).user
    if not user.active:
        raise TokenInvalid()
    secret = new_secret()
    user.otp_pending_secret = encrypt(secret)
    user.otp_pending_since = clock.utcnow()
    issuer = get_setting("authentication.otp_issuer")
    uri = provisioning_uri(secret, issuer=issuer, login_name=user.login_name)
    queue_email(user, "new_secret", "Your new OTP secret code", ip=ip,
                images=[("otp-qr", qr_png(uri))], secret=secret,
                grouped_secret=group_secret(secret), issuer=issuer,
                replaces_existing=user.otp_secret is not None)
    audit.record("otp_reset.used", subject=user, ip=ip)
    db.session.commit()
    return user
