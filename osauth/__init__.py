"""osauth: sign-in with system-wide TOTP two-factor authentication."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import load_config
from .extensions import csrf, db, limiter, login_manager, migrate

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; ``config`` (tests) overrides the defaults and the environment."""
    app = Flask(__name__, instance_relative_config=True)
    load_config(app, config)
    if app.config["TRUSTED_PROXIES"]:
        # Behind N proxies the client's address is the Nth from the right in X-Forwarded-For;
        # never trust the header without them, or anyone could pick their own address.
        n = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=0)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))
    csrf.init_app(app)
    login_manager.init_app(app)
    limiter.init_app(app)

    from . import cli, web
    from .admin_settings import bp as admin_settings_bp
    from .auth import bp as auth_bp
    from .otp_reset import bp as otp_reset_bp

    web.init_app(app)
    cli.init_app(app)
    app.register_blueprint(auth_bp)
    app.register_blueprint(otp_reset_bp)
    app.register_blueprint(admin_settings_bp)
    if app.config["DEVELOPMENT"]:
        from .dev_mail import bp as dev_mail_bp

        app.register_blueprint(dev_mail_bp)
    return app
