"""Counting limits that must not show when they trip (the reset request answers the same
words either way). They share Flask-Limiter's storage, so they hold across workers."""

from __future__ import annotations

import logging

from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from ..extensions import limiter

log = logging.getLogger(__name__)
# Like Flask-Limiter's own fallback: while the shared storage is unreachable, count here.
_fallback = FixedWindowRateLimiter(MemoryStorage())


def allow(scope: str, key: str, limits: str) -> bool:
    """Count one hit of ``key`` in ``scope``; False when any of ``limits`` is exceeded."""
    if not limiter.enabled:
        return True
    items = parse_many(limits)
    try:
        return all([limiter.limiter.hit(item, scope, key) for item in items])
    except Exception as error:  # each storage backend raises its own errors (redis, …)
        log.warning("rate limit storage unreachable (%s); counting in this process", error)
        return all([_fallback.hit(item, scope, key) for item in items])
