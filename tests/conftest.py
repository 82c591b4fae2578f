"""Fixtures: ``app``, ``client``, ``runner``, ``auth``, users, a browser and real services.

The database is SQLite unless ``OSAUTH_TEST_DATABASE_URL`` names another (PostgreSQL). It is
migrated once per run and emptied before each test. A test that needs PostgreSQL or Redis
skips when it is absent, unless ``OSAUTH_REQUIRE_SERVICES=1``, where it fails.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from cryptography.fernet import Fernet
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import select
from werkzeug.serving import make_server

from osauth import create_app
from osauth.extensions import db
from osauth.models import User
from osauth.services import totp
from osauth.services.email_settings import send_test_email
from osauth.services.secrets import encrypt
from osauth.services.settings import set_setting
from osauth.services.users import create_user
from osauth.services.worker import work_once

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
    return app_factory(POSTGRES_URL,
                       SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 40, "pool_pre_ping": True})


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
    """Sign in and out through the real forms, CSRF tokens included."""

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

    def login_admin(self, smtp_server: SMTPServer | None = None):
        """Sign in as the super admin 'root' (created if needed); 2FA is whatever it is."""
        app = self.client.application
        with app.app_context():
            if db.session.scalar(select(User).where(User.login_key == "root")) is None:
                add_user("root", super_admin=True, enrolled=False)
        response = self.login("root")
        assert response.status_code == 302, response.get_data(as_text=True)
        return response

    def post(self, path: str, data: dict | None = None, *, page: str = "/", **kwargs):
        """POST with the CSRF token of ``page``, as the browser would."""
        token = csrf_token_from(self.client.get(page).get_data(as_text=True))
        return self.client.post(path, data={"csrf_token": token, **(data or {})}, **kwargs)

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SMTPServer:
    """A real SMTP server on loopback (aiosmtpd) keeping what it receives."""

    def __init__(self, port: int | None = None, delay: float = 0.0,
                 answer: str = "250 Message accepted for delivery") -> None:
        self.port = port or free_port()
        self.delay = delay
        self.answer = answer  # e.g. "554 5.7.1 Relaying denied" to play a refusing relay
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        if not self.answer.startswith("250"):
            return self.answer
        message = message_from_bytes(envelope.content, policy=email_policy.default)
        with self._lock:
            self.messages.append(message)
        return self.answer

    def start(self) -> SMTPServer:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.messages) >= count, f"{len(self.messages)} of {count} emails arrived"
        return self.messages


def configure_email(app: Flask, port: int) -> None:
    with app.app_context():
        set_setting("email.smtp_host", "127.0.0.1")
        set_setting("email.smtp_port", port)
        set_setting("email.sender", "osauth@example.org")
        db.session.commit()


def verify_email(app: Flask, smtp_server: SMTPServer) -> None:
    """Point email at ``smtp_server`` and send a real test email, as an admin would."""
    configure_email(app, smtp_server.port)
    with app.app_context():
        admin = db.session.scalar(select(User).where(User.is_super_admin)) or add_user(
            "root", super_admin=True, enrolled=False)[0]
        send_test_email(admin)
    smtp_server.messages.clear()


@pytest.fixture
def smtp_server(app) -> Iterator[SMTPServer]:
    """Started, and the app's email settings point at it."""
    server = SMTPServer().start()
    configure_email(app, server.port)
    yield server
    server.stop()


def deliver(app: Flask) -> int:
    """One worker pass: queued reset requests become emails, due emails are sent."""
    with app.app_context():
        return work_once()


def text_part(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_part(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def inline_image(message: EmailMessage, cid: str) -> bytes:
    for part in message.walk():
        if part.get("Content-ID") == f"<{cid}>":
            return part.get_content()
    raise AssertionError(f"no inline image {cid}")


def decode_qr(png: bytes, tmp_path: Path) -> str:
    if shutil.which("zbarimg") is None:
        service_missing("zbarimg is not installed (apt-get install zbar-tools)")
    path = tmp_path / "qr.png"
    path.write_bytes(png)
    result = subprocess.run(["zbarimg", "--quiet", "--raw", str(path)], capture_output=True,
                            text=True, timeout=30, check=True)
    return result.stdout.strip()


def link_in(message: EmailMessage) -> str:
    match = re.search(r"https?://\S+/otp-reset/[A-Za-z0-9_-]+", text_part(message))
    assert match, "no reset link in the email"
    return match.group(0)


def secret_in(message: EmailMessage) -> str:
    match = re.search(r"Key:\s+((?:[A-Z2-7]{4} ?)+)", text_part(message))
    assert match, "no secret in the email"
    return match.group(1).replace(" ", "")


class HttpClient:
    """A browser-like client over real HTTP: its own cookies, no redirects followed, and an
    X-Forwarded-For address (the site under test trusts one proxy) so each client can stand
    for a different machine."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    def __init__(self, base_url: str, ip: str = "198.51.100.1") -> None:
        self.base_url = base_url
        self.ip = ip
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), self._NoRedirect())

    def request(self, path: str, data: dict | None = None) -> tuple[int, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.base_url + path, data=body,
                                         headers={"X-Forwarded-For": self.ip})
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def csrf_token(self, path: str = "/login") -> str:
        status, page = self.request(path)
        assert status == 200, (status, page[:500])
        return csrf_token_from(page)

    def sign_in(self, login_name: str, password: str, otp: str, token: str | None = None):
        return self.request("/login", {"csrf_token": token or self.csrf_token(),
                                       "login_name": login_name, "password": password,
                                       "otp": otp})


class GunicornSite:
    """``gunicorn -c gunicorn.conf.py wsgi:app`` on 127.0.0.1, with its log in a file."""

    ROOT = Path(__file__).resolve().parent.parent

    def __init__(self, log_dir: Path, *, workers: int = 4, app: str = "wsgi:app",
                 **env: str) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"gunicorn-{self.port}.log"
        self.env = {
            **os.environ, "OSAUTH_BIND": f"127.0.0.1:{self.port}",
            "OSAUTH_WORKERS": str(workers), "OSAUTH_SECRET_KEY": "production test key",
            "OSAUTH_OTP_ENCRYPTION_KEYS": ENCRYPTION_KEY, "OSAUTH_DATABASE_URL": POSTGRES_URL,
            "OSAUTH_SESSION_COOKIE_SECURE": "false",  # plain http on loopback
            "OSAUTH_TRUSTED_PROXIES": "1", "OSAUTH_ACCESS_LOG": "-", **env,
        }
        self.process: subprocess.Popen | None = None
        self.ready_path = "/login" if app == "wsgi:app" else "/"

    def __enter__(self) -> GunicornSite:
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py",
             self.app], cwd=self.ROOT, env=self.env, stdout=self.log,
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}{self.ready_path}", timeout=5) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not start: {self.log_text()}")

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]


def redis_available(url: str = REDIS_URL) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
    except redis.RedisError as error:
        service_missing(f"Redis at {url} is not reachable: {error}")
