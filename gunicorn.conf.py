"""gunicorn settings: ``gunicorn -c gunicorn.conf.py wsgi:app`` (the file is read by default
from the working directory, so plain ``gunicorn wsgi:app`` uses it too)."""

import multiprocessing
import os
import re

from gunicorn.glogging import Logger

bind = os.environ.get("OSAUTH_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("OSAUTH_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("OSAUTH_THREADS", "1"))
timeout = int(os.environ.get("OSAUTH_WORKER_TIMEOUT", "30"))
graceful_timeout = 30
# Each worker opens its own database pool after the fork; a preloaded app would share one.
preload_app = False
accesslog = os.environ.get("OSAUTH_ACCESS_LOG", "-") or None  # empty: no access log
errorlog = "-"
# The app's own warnings (a mail relay down, rate-limit storage unreachable) go to the error
# log with gunicorn's; without this they would be dropped.
logconfig_dict = {
    "root": {"level": "INFO", "handlers": ["error_console"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False,
                           "qualname": "gunicorn.error"},
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False,
                            "qualname": "gunicorn.access"},
    },
}

RESET_TOKEN = re.compile(r"(/otp-reset/)[A-Za-z0-9_-]+")


class RedactingLogger(Logger):
    """Access logs without reset tokens: a log reader must not be able to use a link."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U", "{raw_uri}e"):
            if isinstance(atoms.get(key), str):
                atoms[key] = RESET_TOKEN.sub(r"\1…", atoms[key])
        return atoms


logger_class = RedactingLogger
