"""Counting limits that must not show when they trip (the reset request answers the same
words either way). They share Flask-Limiter's storage, so they hold across workers."""

from __future__ import annotations

from limits import parse_many

from ..extensions import limiter


def allow(scope: str, key: str, limits: str) -> bool:
    """Count one hit of ``key`` in ``scope``; False when any of ``limits`` is exceeded."""
    if not limiter.enabled:
        return True
    return all([limiter.limiter.hit(item, scope, key) for item in parse_many(limits)])
