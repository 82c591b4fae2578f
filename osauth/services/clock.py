"""The one source of the current time, so tests can move it."""

from __future__ import annotations

import time as _time
from datetime import UTC, datetime


def time() -> float:
    return _time.time()


def utcnow() -> datetime:
    return datetime.fromtimestamp(time(), UTC).replace(tzinfo=None)
