"""Fixtures: ``app``, ``client``, ``runner``, ``auth``, users, a browser and real services.

The database is SQLite unless ``OSAUTH_TEST_DATABASE_URL`` names another (PostgreSQL). It is
migrated once per run and emptied before each test. A test that needs PostgreSQL or Redis
skips when it is absent, unless ``OSAUTH_REQUIRE_SERVICES=1``, where it fails.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from flask import Flask
from flask_migrate import upgrade
from werkzeug.serving import make_server

from osauth import create_app
from osauth.extensions import db
from osauth.models import User
from osauth.services import totp
from osauth.services.secrets import encrypt
from osauth.services.settings import set_setting
from osauth.services.users import create_user

REQUIRE_SERVICES = os.environ.get("OSAUTH_REQUIRE_SERVICES") == "1"
TEST_DATABASE_URL = os.environ.get("OSAUTH_TEST_DATABASE_URL")
POSTGRES_URL = TEST_DATABASE_URL if (TEST_DATABASE_URL or "").startswith("postgresql") else (
    os.environ.get("OSAUTH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
REDIS_URL = os.environ.get("OSAUTH_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery"
ENCRYPTION_KEY = Fernet.generate_key().decode()


def service_missing(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (OSAUTH_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def base_config(database_url: str, **extra) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test secret key",
        "DATABASE_URL": database_url,
        "OTP_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        # A cheaper scrypt keeps the suite quick; the cost is a setting, the code path is the same.
        "PASSWORD_HASH_METHOD": "scrypt:4096:8:1",
        "LOGIN_RATE_LIMIT": "1000 per minute",
        **extra,
    }


_migrated: dict[str, bool] = {}


def migrated_database(url: str) -> str:
    """Start from an empty schema once per run, then bring it to the newest revision."""
    if url not in _migrated:
        if url.startswith("postgresql"):
            try:
                engine = sa.create_engine(url)
                with engine.begin() as conn:
                    conn.execute(sa.text("DROP SCHEMA public CASCADE"))
                    conn.execute(sa.text("CREATE SCHEMA public"))
                engine.dispose()
            except sa.exc.OperationalError as error:
                _migrated[url] = False
                raise RuntimeError(f"PostgreSQL at {url} is not reachable: {error}") from None
        app = create_app(base_config(url))
        with app.app_context():
            upgrade()
            db.engine.dispose()
        _migrated[url] = True
    return url


def empty_tables() -> None:
    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(table.delete())
    db.session.commit()


def make_app(url: str, **extra) -> Flask:
    app = create_app(base_config(migrated_database(url), **extra))
    with app.app_context():
        empty_tables()
    return app


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    if TEST_DATABASE_URL:
        return TEST_DATABASE_URL
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'osauth.sqlite'}"


@pytest.fixture
def app_factory(database_url) -> Iterator:
    """Make apps with extra configuration; their connection pools are closed afterwards."""
    made: list[Flask] = []

    def factory(url: str = database_url, **extra) -> Flask:
        try:
            app = make_app(url, **extra)
        except RuntimeError as error:
            service_missing(str(error))
        made.append(app)
        return app

    yield factory
    for app in made:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def app(app_factory) -> Flask:
    return app_factory()


@pytest.fixture
def pg_app(app_factory) -> Flask:
    """An app on PostgreSQL whatever the suite's database, for concurrency tests."""
    return app_factory(POSTGRES_URL, SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 40})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def csrf_token_from(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


class AuthActions:
    def __init__(self, client) -> None:
        self.client = client

    def csrf_token(self, path: str = "/login") -> str:
        return csrf_token_from(self.client.get(path).get_data(as_text=True))

    def login(self, login_name: str = "alice", password: str = PASSWORD, otp: str | None = None,
              **extra):
        data = {"csrf_token": self.csrf_token(), "login_name": login_name, "password": password,
                **extra}
        if otp is not None:
            data["otp"] = otp
        return self.client.post("/login", data=data)

    def logout(self):
        token = csrf_token_from(self.client.get("/").get_data(as_text=True))
        return self.client.post("/logout", data={"csrf_token": token})


@pytest.fixture
def auth(client) -> AuthActions:
    return AuthActions(client)


def add_user(login_name: str = "alice", *, enrolled: bool = True, super_admin: bool = False,
             email: str | None = None) -> tuple[User, str | None]:
    """A user with the test password and, when enrolled, an authenticator; returns its secret."""
    user = create_user(login_name, email or f"{login_name}@example.org", PASSWORD,
                       first_name=login_name.title(), super_admin=super_admin)
    secret = None
    if enrolled:
        secret = totp.new_secret()
        user.otp_secret = encrypt(secret)
        db.session.commit()
    return user, secret


def enable_two_factor() -> None:
    set_setting("authentication.two_factor_enabled", True)
    db.session.commit()


@pytest.fixture
def alice(app) -> str:
    """alice exists with an authenticator and 2FA is on; returns her secret."""
    with app.app_context():
        _, secret = add_user("alice")
        enable_two_factor()
    return secret


class LiveServer:
    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(app) -> Iterator[LiveServer]:
    with LiveServer(app) as server:
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator:
    if not Path(CHROMIUM).exists():
        service_missing(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.console_errors = console_errors
    yield page
    context.close()
