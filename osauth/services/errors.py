"""Domain errors raised by services; views turn them into messages."""

from __future__ import annotations

from datetime import datetime


class DomainError(Exception):
    """Base of every error a view may show to a user."""


class InvalidCredentials(DomainError):
    """Wrong login name, password or code: one error, so none of them is revealed."""


class AccountLocked(DomainError):
    def __init__(self, until: datetime) -> None:
        super().__init__(f"locked until {until:%Y-%m-%d %H:%M} UTC")
        self.until = until


class AccountInactive(DomainError):
    """The password was right but the account is deactivated."""


class EnrolmentRequired(DomainError):
    """The password was right but 2FA is on and the user has no authenticator yet."""


class ValidationError(DomainError):
    """Input a service refuses; the message says why."""


class TwoFactorNotReady(DomainError):
    """2FA cannot be enabled yet; the message names what is missing."""
