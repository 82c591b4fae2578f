"""Small text rules shared by services, forms and queries."""

from __future__ import annotations

import unicodedata


def login_key(login_name: str) -> str:
    """What makes login names case-insensitive (and 'ﬁ' equal to 'fi')."""
    return unicodedata.normalize("NFKC", login_name).casefold()


def has_control_characters(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in text)


def escape_like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern whose escape character is a backslash."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
