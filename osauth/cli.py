"""Operator commands: ``flask --app wsgi create-user`` and ``flask --app wsgi two-factor``."""

from __future__ import annotations

import secrets
import signal
import sys
import threading
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select
from werkzeug.serving import run_simple

from .extensions import db
from .models import User
from .services.errors import TwoFactorNotReady, ValidationError
from .services.key_rotation import rotate_encryption_keys
from .services.settings import get_setting
from .services.two_factor import disable_two_factor, enable_two_factor
from .services.users import create_user
from .services.worker import run_delivery_loop, start_delivery_thread, work_once


@click.command("create-user")
@with_appcontext
@click.argument("login")
@click.option("--email", required=True, help="Where reset links and notices are sent.")
@click.option("--first-name", default="", help="Given name.")
@click.option("--last-name", default="", help="Family name.")
@click.option("--super-admin", is_flag=True, help="May change settings and manage users.")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from standard input instead of prompting twice.")
def create_user_command(login: str, email: str, first_name: str, last_name: str,
                        super_admin: bool, password_stdin: bool) -> None:
    """Create the user LOGIN."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_user(login, email, password, first_name=first_name, last_name=last_name,
                           super_admin=super_admin)
    except ValidationError as error:
        raise click.ClickException(str(error)) from None
    role = "super admin" if super_admin else "user"
    click.echo(f"Created {role} {user.login_name} <{user.email}>.")


two_factor_group = AppGroup(
    "two-factor", help="Show or switch system-wide two-factor authentication.")


@two_factor_group.command("status")
def status_command() -> None:
    """Print whether 2FA is on."""
    click.echo("on" if get_setting("authentication.two_factor_enabled") else "off")


@two_factor_group.command("enable")
def enable_command() -> None:
    """Turn 2FA on for every user (refused while email is not ready)."""
    try:
        enable_two_factor(actor=None, via="cli")
    except TwoFactorNotReady as error:
        raise click.ClickException(str(error)) from None
    click.echo("Two-factor authentication is on.")


@two_factor_group.command("disable")
def disable_command() -> None:
    """Turn 2FA off: the break-glass for a site nobody can sign in to. Audited."""
    disable_two_factor(actor=None, via="cli")
    click.echo("Two-factor authentication is off.")


@click.command("create-demo-admin")
@with_appcontext
def create_demo_admin_command() -> None:
    """Development only: create a super admin 'admin' when there is none; print its password."""
    if not current_app.config["DEVELOPMENT"]:
        raise click.ClickException("create-demo-admin is for development only.")
    if db.session.scalar(select(User.id).where(User.is_super_admin).limit(1)) is not None:
        click.echo("A super admin exists already; no demo admin created.")
        return
    password = secrets.token_urlsafe(12)
    create_user("admin", "admin@example.org", password, first_name="Demo",
                last_name="Admin", super_admin=True)
    click.echo(f"Demo super admin created. Login name: admin  Password: {password}")
    click.echo("(shown once; create your own users with `flask --app wsgi create-user`)")


@click.command("rotate-keys")
@with_appcontext
def rotate_keys_command() -> None:
    """Re-encrypt every stored secret under the first OSAUTH_OTP_ENCRYPTION_KEYS key."""
    counts = rotate_encryption_keys()
    click.echo("Re-encrypted " + ", ".join(f"{n} {what}" for what, n in counts.items()) + ".")


mail_group = AppGroup("mail", help="The email outbox.")


@mail_group.command("deliver")
@click.option("--once", is_flag=True, help="Send what is due, then exit.")
@click.option("--interval", default=2.0, show_default=True,
              help="Seconds between passes when nothing is due.")
def deliver_command(once: bool, interval: float) -> None:
    """Turn reset requests into emails and send them, retrying while the relay is down.

    Several may run at once on PostgreSQL."""
    if once:
        click.echo(f"Sent {work_once()} message(s).")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo("Delivering mail; stop with Ctrl-C or SIGTERM.")
    try:
        run_delivery_loop(current_app._get_current_object(), stop, interval)
    except KeyboardInterrupt:
        pass


@click.command("dev-server")
@click.option("--port", default=5000, show_default=True, help="Port of the site on 127.0.0.1.")
@click.option("--mail-port", default=8025, show_default=True,
              help="Port of the mail catcher on 127.0.0.1.")
@with_appcontext
def dev_server_command(port: int, mail_port: int) -> None:
    """Development: the site, a local mail catcher (shown at /dev/mail) and the mail worker."""
    from .dev_mail.catcher import start_mail_catcher

    app = current_app._get_current_object()
    if not app.config["DEVELOPMENT"]:
        raise click.ClickException("dev-server is for development only.")
    catcher = start_mail_catcher(Path(app.config["DEV_MAIL_DIR"]), mail_port)
    # Only defaults: an email configuration saved in the settings still wins.
    if not app.config.get("MAIL_SERVER"):
        app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=mail_port, MAIL_SECURITY="none",
                          MAIL_DEFAULT_SENDER="osauth@localhost")
    worker = start_delivery_thread(app)
    click.echo(f"Mail catcher on 127.0.0.1:{mail_port}; caught mail at "
               f"http://127.0.0.1:{port}/dev/mail")
    try:
        run_simple("127.0.0.1", port, app, threaded=True)
    finally:
        worker.stop()
        catcher.stop()


def init_app(app: Flask) -> None:
    app.cli.add_command(create_user_command)
    app.cli.add_command(two_factor_group)
    app.cli.add_command(create_demo_admin_command)
    app.cli.add_command(mail_group)
    app.cli.add_command(dev_server_command)
    app.cli.add_command(rotate_keys_command)
