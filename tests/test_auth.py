from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import PASSWORD, add_user, csrf_token_from, enable_two_factor
from sqlalchemy import select

from osauth import create_app
from osauth.config import ConfigError
from osauth.extensions import db
from osauth.models import AuditEvent, User
from osauth.services import clock, totp

WRONG = "The login name, password or OTP code is wrong."


def text_of(response) -> str:
    return response.get_data(as_text=True)


def audit_kinds(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent.kind).order_by(AuditEvent.id)))


def test_login_page_words(client):
    page = text_of(client.get("/login"))
    for words in ("Login name", "Password", "Sign in"):
        assert words in page
    assert 'hx-get="/login/otp-field"' in page
    assert 'src="/static/htmx.min.js"' in page


def test_otp_fragment_is_empty_while_2fa_is_off(client):
    fragment = text_of(client.get("/login/otp-field"))
    assert "OTP" not in fragment
    assert "Reset OTP Secret Code?" not in fragment


def test_otp_fragment_while_2fa_is_on(app, client, alice):
    fragment = text_of(client.get("/login/otp-field"))
    assert "OTP code" in fragment
    assert 'autocomplete="one-time-code"' in fragment
    assert 'inputmode="numeric"' in fragment
    assert "Reset OTP Secret Code?" in fragment


def test_sign_in_with_password_while_2fa_is_off(app, client, auth):
    with app.app_context():
        add_user("bob", enrolled=False)
    response = auth.login("bob")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    home = text_of(client.get("/"))
    assert "Bob" in home and "Sign out" in home


def test_sign_in_with_code(app, client, auth, alice):
    response = auth.login(otp=totp.current_code(alice))
    assert response.status_code == 302
    assert "Sign out" in text_of(client.get("/"))
    assert audit_kinds(app)[-1] == "sign_in.succeeded"


def test_login_names_are_case_insensitive(app, auth, alice):
    assert auth.login("ALICE", otp=totp.current_code(alice)).status_code == 302


def test_code_with_spaces_is_accepted(auth, alice):
    code = totp.current_code(alice)
    assert auth.login(otp=f"{code[:3]} {code[3:]}").status_code == 302


@pytest.mark.parametrize("login_name,password,code", [
    ("alice", PASSWORD, "wrong"),       # replaced by a wrong six-digit code below
    ("alice", "wrong password", None),  # right code
    ("nobody", PASSWORD, None),
])
def test_one_generic_error(app, auth, alice, login_name, password, code):
    right = totp.current_code(alice)
    if code == "wrong":
        code = f"{(int(right) + 1) % 1_000_000:06d}"
    response = auth.login(login_name, password, otp=code or right)
    assert response.status_code == 401
    assert WRONG in text_of(response)


def test_missing_code_shows_the_field_and_asks_for_it(auth, alice):
    response = auth.login(password="wrong password")
    page = text_of(response)
    assert response.status_code == 400
    assert "Enter the OTP code" in page
    assert 'name="otp"' in page  # shown without JavaScript
    assert WRONG not in page  # the password was not even looked at


def test_a_used_code_cannot_sign_in_again(auth, alice):
    code = totp.current_code(alice)
    assert auth.login(otp=code).status_code == 302
    auth.logout()
    assert auth.login(otp=code).status_code == 401


def test_user_without_authenticator_is_sent_to_reset(app, auth):
    with app.app_context():
        add_user("carol", enrolled=False)
        enable_two_factor()
    response = auth.login("carol", otp="123456")
    assert response.status_code == 403
    assert "Reset OTP Secret Code?" in text_of(response)
    # a wrong password still gets the generic error: the message reveals nothing to a guesser
    assert WRONG in text_of(auth.login("carol", "wrong password", otp="123456"))


def test_deactivated_user_is_told_after_the_right_password(app, auth, alice):
    with app.app_context():
        db.session.scalar(select(User)).active = False
        db.session.commit()
    assert "deactivated" in text_of(auth.login(otp=totp.current_code(alice)))
    assert WRONG in text_of(auth.login(password="wrong password", otp="123456"))


def test_failures_lock_the_account_then_the_lock_expires(app, auth, alice, monkeypatch):
    right = totp.current_code(alice)
    wrong_code = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(2):
        assert auth.login(password="wrong password", otp=right).status_code == 401
    for _ in range(2):
        assert auth.login(otp=wrong_code).status_code == 401
    fifth = auth.login(password="wrong password", otp=right)
    assert fifth.status_code == 403 and "locked" in text_of(fifth)
    # while locked, even the right password and code only hear about the lock
    locked = auth.login(otp=right)
    assert locked.status_code == 403 and "locked" in text_of(locked)
    assert audit_kinds(app).count("account.locked") == 1

    later = clock.time() + timedelta(minutes=16).total_seconds()
    monkeypatch.setattr(clock, "time", lambda: later)
    assert auth.login(otp=totp.current_code(alice, now=later)).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(User.failed_attempts)) == 0


def test_a_success_resets_the_failure_count(app, auth, alice):
    for _ in range(4):
        auth.login(password="wrong password", otp="000000")
    assert auth.login(otp=totp.current_code(alice)).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(User.failed_attempts)) == 0


def test_unknown_login_name_costs_one_password_hash(app, auth, monkeypatch):
    import osauth.services.users as users

    calls = []
    real = users.check_password_hash

    def counting(hashed, password):
        calls.append(hashed)
        return real(hashed, password)

    monkeypatch.setattr(users, "check_password_hash", counting)
    with app.app_context():
        add_user("dave", enrolled=False)
    auth.login("nobody", "whatever password")
    auth.login("dave", "whatever password")
    assert len(calls) == 2
    assert calls[0].startswith("scrypt:4096:8:1$")  # the same method and cost as a real one


def test_session_is_renewed_at_sign_in(app, client, auth, alice):
    with client.session_transaction() as session:
        session["planted"] = "by someone before sign-in"
    auth.login(otp=totp.current_code(alice))
    with client.session_transaction() as session:
        assert "planted" not in session
        assert "_user_id" in session


def test_bumping_the_session_epoch_signs_the_user_out(app, client, auth, alice):
    auth.login(otp=totp.current_code(alice))
    with app.app_context():
        db.session.scalar(select(User)).session_epoch += 1
        db.session.commit()
    assert client.get("/").status_code == 302


def test_sign_out_is_a_post_with_csrf(client, auth, alice):
    auth.login(otp=totp.current_code(alice))
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert auth.logout().status_code == 302
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_post_without_csrf_token_is_refused(client, alice):
    response = client.post("/login", data={"login_name": "alice", "password": PASSWORD,
                                           "otp": totp.current_code(alice)})
    assert response.status_code == 400
    assert "not sent from this site" in text_of(response)


def test_htmx_requests_carry_the_csrf_token_in_a_header(client):
    page = text_of(client.get("/login"))
    assert 'hx-headers=\'{"X-CSRFToken": "' in page


@pytest.mark.parametrize("target,expected", [
    ("/", "/"), ("//evil.example/", "/"), ("https://evil.example/", "/"),
    ("/\\evil.example", "/"), ("/login", "/login"),
])
def test_next_only_leads_within_the_site(auth, client, alice, target, expected):
    token = auth.csrf_token()
    response = client.post(f"/login?next={target}", data={
        "csrf_token": token, "login_name": "alice", "password": PASSWORD,
        "otp": totp.current_code(alice)})
    assert response.headers["Location"] == expected


def test_security_headers(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in response.headers  # development: plain http
    assert "<script>" not in text_of(response)  # no inline script for the CSP to block


def test_production_sends_hsts(app_factory):
    production = app_factory(DEVELOPMENT=False)
    response = production.test_client().get("/login")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_session_cookie_flags(app, auth, alice, database_url):
    response = auth.login(otp=totp.current_code(alice))
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # development and tests run on plain http
    production = create_app({"SECRET_KEY": "k", "DATABASE_URL": database_url,
                             "OTP_ENCRYPTION_KEYS": app.config["OTP_ENCRYPTION_KEYS"]})
    assert production.config["SESSION_COOKIE_SECURE"] is True


def test_login_rate_limit_per_ip(app_factory):
    client = app_factory(LOGIN_RATE_LIMIT="3 per minute").test_client()
    token_page = client.get("/login").get_data(as_text=True)
    data = {"csrf_token": csrf_token_from(token_page), "login_name": "x", "password": "y"}
    statuses = [client.post("/login", data=data).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert "Too many attempts" in client.post("/login", data=data).get_data(as_text=True)
    assert client.get("/login").status_code == 200  # the page itself stays reachable


HOSTILE = [
    {"login_name": "a" * 10_000},
    {"login_name": "ali\x00ce"},
    {"password": "pass\x00word"},
    {"login_name": "\u202eecila"},
    {"login_name": "ali\u200bce"},
    {"login_name": ""},
    {"password": ""},
    {"password": "p" * 5000},
    {"otp": "12345a"},
    {"otp": "１２３４５６"},
    {"otp": "1" * 50},
    {"otp": "12\x003456"},
]


@pytest.mark.parametrize("bad", HOSTILE)
def test_hostile_input_gets_a_clear_4xx(auth, client, alice, bad):
    data = {"csrf_token": auth.csrf_token(), "login_name": "alice", "password": PASSWORD,
            "otp": totp.current_code(alice), **bad}
    response = client.post("/login", data=data)
    assert 400 <= response.status_code < 500
    page = text_of(response)
    assert "Traceback" not in page
    assert 'class="error"' in page


@pytest.mark.parametrize("raw", [
    b"login_name=%ED%A0%80&password=x",  # a UTF-8-encoded surrogate: not valid UTF-8
    b"login_name=%FF%FE&password=%C3",
    b"\x00\x01\x02",
])
def test_undecodable_bodies_get_a_clear_4xx(auth, client, alice, raw):
    body = raw + b"&csrf_token=" + auth.csrf_token().encode()
    response = client.post("/login", data=body,
                           content_type="application/x-www-form-urlencoded")
    assert 400 <= response.status_code < 500
    assert 'class="error"' in text_of(response)


def test_oversized_body_gets_413(client):
    response = client.post("/login", data={"login_name": "x" * 100_000})
    assert response.status_code == 413
    assert "too large" in text_of(response)


@pytest.mark.parametrize("path", ["/nowhere", "/static/nothing.js"])
def test_unknown_pages_get_a_clear_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert "There is no page at this address" in text_of(response)


def test_production_refuses_to_start_without_a_secret_key(monkeypatch, database_url):
    monkeypatch.delenv("OSAUTH_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="OSAUTH_SECRET_KEY"):
        create_app({"DATABASE_URL": database_url})


def test_production_refuses_to_start_without_encryption_keys(database_url):
    with pytest.raises(ConfigError, match="OSAUTH_OTP_ENCRYPTION_KEYS"):
        create_app({"DATABASE_URL": database_url, "SECRET_KEY": "k"})
    with pytest.raises(ConfigError, match="key 2 is not a Fernet key"):
        create_app({"DATABASE_URL": database_url, "SECRET_KEY": "k",
                    "OTP_ENCRYPTION_KEYS": _fernet_key() + ",bad"})


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def test_configuration_from_the_environment(monkeypatch, database_url, tmp_path):
    monkeypatch.setenv("OSAUTH_SECRET_KEY", "from the environment")
    monkeypatch.setenv("OSAUTH_DATABASE_URL", database_url)
    monkeypatch.setenv("OSAUTH_OTP_ENCRYPTION_KEYS", _fernet_key())
    monkeypatch.setenv("OSAUTH_BASE_URL", "https://osauth.example.org")
    app = create_app()
    assert app.config["SECRET_KEY"] == "from the environment"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == database_url
    assert app.config["BASE_URL"] == "https://osauth.example.org"


def test_development_secret_key_is_generated_once(tmp_path, database_url, monkeypatch):
    monkeypatch.delenv("OSAUTH_SECRET_KEY", raising=False)
    import flask

    monkeypatch.setattr(flask.Flask, "auto_find_instance_path", lambda self: str(tmp_path))
    first = create_app({"DEVELOPMENT": True, "DATABASE_URL": database_url})
    second = create_app({"DEVELOPMENT": True, "DATABASE_URL": database_url})
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert len(first.config["SECRET_KEY"]) >= 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
