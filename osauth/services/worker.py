"""The background worker: reset requests become emails, emails go to the relay.

In development a thread of the web process runs it; in production ``flask --app wsgi mail
deliver`` does, as one or more processes of its own.
"""

from __future__ import annotations

import logging
import threading

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from .mail import deliver_pending
from .otp_reset import process_reset_requests

log = logging.getLogger(__name__)


def work_once() -> int:
    """One pass; returns how many emails were sent."""
    process_reset_requests()
    return deliver_pending()


def run_delivery_loop(app: Flask, stop: threading.Event, interval: float) -> None:
    """Deliver until ``stop`` is set. Each pass has its own app context, so it reads the
    settings afresh; a failing pass is logged and retried, so a database restart does not end
    the worker."""
    while not stop.is_set():
        sent = 0
        with app.app_context():
            try:
                sent = work_once()
            except SQLAlchemyError:
                log.exception("mail delivery pass failed")
        if not sent:
            stop.wait(interval)


class DeliveryThread(threading.Thread):
    """Development: the worker as a thread of the web process."""

    def __init__(self, app: Flask, interval: float) -> None:
        self._stop_event = threading.Event()
        super().__init__(target=run_delivery_loop, args=(app, self._stop_event, interval),
                         name="osauth-mail", daemon=True)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop_event.set()
        self.join(timeout)


def start_delivery_thread(app: Flask, interval: float = 1.0) -> DeliveryThread:
    thread = DeliveryThread(app, interval)
    thread.start()
    return thread
