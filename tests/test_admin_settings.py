from __future__ import annotations

import re

import pytest
from conftest import (
    PASSWORD,
    SMTPServer,
    add_user,
    configure_email,
    deliver,
    link_in,
    text_part,
    verify_email,
)
from sqlalchemy import func, insert, select, text

from osauth.extensions import db
from osauth.models import AuditEvent, User
from osauth.services import totp
from osauth.services.settings import get_setting, set_setting
from osauth.services.text import login_key

# Every route that is not an admin page, and who may open it. A new route must be put here
# (or be an admin route), so none is added without deciding who may see it.
PUBLIC = {"static", "auth.login", "auth.otp_field", "auth.logout", "otp_reset.request_link",
          "otp_reset.confirm", "dev_mail.inbox", "dev_mail.show", "dev_mail.image"}
SIGNED_IN = {"auth.home", "auth.profile", "auth.profile_notifications"}
SAMPLE_ARGS = {"user_id": 1, "action": "unlock", "token": "x", "name": "1", "cid": "x",
               "filename": "x"}


def page_text(response) -> str:
    return response.get_data(as_text=True)


def admin_routes(app) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("admin_settings."):
            path = rule.build({k: v for k, v in SAMPLE_ARGS.items() if k in rule.arguments})[1]
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                routes.append((method, path))
    return routes


def test_every_route_is_classified(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    admin = {e for e in endpoints if e.startswith("admin_settings.")}
    assert len(admin) >= 9
    assert endpoints - admin == PUBLIC | SIGNED_IN


def test_admin_routes_send_anonymous_visitors_to_sign_in(app, client, auth):
    routes = admin_routes(app)
    for method, path in routes:
        response = auth.post(path, page="/login") if method == "POST" else client.get(path)
        assert response.status_code == 302, (method, path)
        assert response.headers["Location"].startswith("/login?next="), (method, path)


def test_admin_routes_refuse_plain_users(app, client, auth):
    with app.app_context():
        add_user("alice", enrolled=False)
    auth.login("alice")
    for method, path in admin_routes(app):
        response = auth.post(path) if method == "POST" else client.get(path)
        assert response.status_code == 403, (method, path)


@pytest.mark.parametrize("path", ["/", "/profile"])
def test_signed_in_pages_send_anonymous_visitors_to_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_navigation_words(app, client, auth):
    auth.login_admin()
    page = page_text(client.get("/settings/authentication"))
    for words in ("Settings", "Authentication", "Email", "Two Factor Authentication", "Enable",
                  "Sign out", "Users", "Audit log", "Profile"):
        assert words in page
    email = page_text(client.get("/settings/email"))
    for label in ("SMTP host", "SMTP port", "Connection security", "SMTP username",
                  "SMTP password", "Sender address", "Email notifications", "Save",
                  "Send test email"):
        assert label in email


def enable(auth, confirm: bool = True, **headers):
    data = {"enable": "y", **({"confirm": "yes"} if confirm else {})}
    return auth.post("/settings/authentication/two-factor", data, headers=headers)


def test_enable_is_refused_without_email_configuration(app, auth):
    auth.login_admin()
    response = enable(auth)
    assert response.status_code == 409
    assert "the email configuration (SMTP host, SMTP port and sender address)" in page_text(
        response)
    with app.app_context():
        assert get_setting("authentication.two_factor_enabled") is False


def test_enable_is_refused_without_a_successful_test_email(app, auth, smtp_server):
    auth.login_admin()
    response = enable(auth)
    assert response.status_code == 409
    assert "a successful test email since the email settings last changed" in page_text(response)


def test_enable_is_refused_with_notifications_off(app, auth, smtp_server):
    verify_email(app, smtp_server)
    with app.app_context():
        set_setting("notifications.system_enabled", False)
        db.session.commit()
    auth.login_admin()
    response = enable(auth)
    assert response.status_code == 409
    assert "system-level email notifications turned on" in page_text(response)


def test_enable_shows_the_impact_then_enables(app, client, auth, smtp_server):
    verify_email(app, smtp_server)
    with app.app_context():
        add_user("alice")
        add_user("bob", enrolled=False)
        carol, _ = add_user("carol")
        carol.email_notifications = False
        db.session.commit()
    auth.login_admin()
    preview = enable(auth, confirm=False)
    page = page_text(preview)
    assert preview.status_code == 200
    assert "2 active users have no authenticator yet" in page  # bob and root
    assert "1 active user has email notifications off" in page
    assert "You have no authenticator yet either" in page
    assert "flask --app wsgi two-factor disable" in page
    with app.app_context():
        assert get_setting("authentication.two_factor_enabled") is False  # not before confirming

    done = enable(auth)
    assert done.status_code == 200 and "Two-factor authentication is on." in page_text(done)
    assert "Disable" in page_text(done)
    assert "OTP code" in page_text(client.get("/login/otp-field"))
    with app.app_context():
        kinds = list(db.session.scalars(select(AuditEvent.kind)))
        assert "two_factor.enabled" in kinds


def test_changing_email_settings_voids_the_test(app, auth, smtp_server):
    verify_email(app, smtp_server)
    auth.login_admin()
    save_email(auth, smtp_server.port, smtp_host="localhost")
    assert "a successful test email" in page_text(enable(auth))


def test_disable(app, auth, smtp_server, client):
    verify_email(app, smtp_server)
    auth.login_admin()
    enable(auth)
    response = auth.post("/settings/authentication/two-factor", {"disable": "y"},
                         headers={"HX-Request": "true"})
    assert "Two-factor authentication is off." in page_text(response)
    assert "OTP" not in page_text(client.get("/login/otp-field"))


def test_htmx_gets_the_fragment_and_others_the_page(app, auth):
    auth.login_admin()
    fragment = page_text(enable(auth, **{"HX-Request": "true"}))
    assert "<html" not in fragment and "Two Factor Authentication" in fragment
    whole = page_text(enable(auth))
    assert "<html" in whole and "OTP policy" in whole


def test_htmx_posts_need_the_csrf_token(app, client, auth):
    auth.login_admin()
    response = client.post("/settings/authentication/two-factor", data={"enable": "y"},
                           headers={"HX-Request": "true"})
    assert response.status_code == 400
    page = page_text(client.get("/settings/email"))
    token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page).group(1)
    response = client.post("/settings/authentication/two-factor", data={"enable": "y"},
                           headers={"HX-Request": "true", "X-CSRFToken": token})
    assert response.status_code == 409  # past CSRF; refused for want of email


def save_email(auth, port: int, **overrides):
    data = {"smtp_host": "127.0.0.1", "smtp_port": str(port), "connection_security": "none",
            "smtp_username": "", "smtp_password": "", "sender": "osauth@example.org",
            "notifications": "y", **overrides}
    return auth.post("/settings/email", data, page="/settings/email")


def test_send_test_email_through_a_real_server(app, client, auth, smtp_server):
    auth.login_admin()
    assert save_email(auth, smtp_server.port).status_code == 302
    response = auth.post("/settings/email/test", page="/settings/email",
                         headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "A test email went to root@example.org." in page_text(response)
    message = smtp_server.wait_for(1)[0]
    assert message["To"] == "root@example.org" and "test email" in text_part(message)


def test_a_relay_error_is_shown(app, auth):
    refusing = SMTPServer(answer="554 5.7.1 Relaying denied for testing").start()
    try:
        auth.login_admin()
        save_email(auth, refusing.port)
        response = auth.post("/settings/email/test", page="/settings/email",
                             headers={"HX-Request": "true"})
        assert response.status_code == 502
        assert "The relay answered 554: 5.7.1 Relaying denied for testing" in page_text(response)
    finally:
        refusing.stop()
    down = auth.post("/settings/email/test", page="/settings/email")
    assert down.status_code == 502 and "could not be reached" in page_text(down)
    assert "<html" in page_text(down)  # without htmx: the whole page


@pytest.mark.parametrize("field,value,message", [
    ("smtp_port", "0", "The smtp port must be from 1 to 65535."),
    ("smtp_port", "70000", "The smtp port must be from 1 to 65535."),
    ("smtp_port", "abc", "Not a valid integer value."),
    ("smtp_host", "", "Enter the SMTP host."),
    ("smtp_host", "mail host", "without spaces"),
    ("connection_security", "telnet", "Not a valid choice."),
    ("sender", "not an email", "The email address is not valid"),
    ("smtp_host", "a\x00b", "characters that cannot be typed"),
])
def test_invalid_email_settings_are_refused_whole(app, auth, field, value, message):
    auth.login_admin()
    response = save_email(auth, 2525, **{field: value, "smtp_username": "changed"})
    assert response.status_code == 400
    assert message in page_text(response)
    with app.app_context():
        assert get_setting("email.smtp_username") == ""  # nothing half-saved


def test_the_smtp_password_is_kept_encrypted_and_never_shown(app, client, auth):
    auth.login_admin()
    save_email(auth, 2525, smtp_username="relay-user", smtp_password="relay secret pw")
    with app.app_context():
        stored = db.session.execute(
            text("SELECT value FROM settings WHERE key = 'email.smtp_password'")).scalar_one()
    assert "relay secret pw" not in stored
    page = page_text(client.get("/settings/email"))
    assert "relay secret pw" not in page and "A password is stored." in page
    save_email(auth, 2525, smtp_username="relay-user")  # blank keeps it
    with app.app_context():
        from osauth.services.mail import smtp_password

        assert smtp_password() == "relay secret pw"
    save_email(auth, 2525, clear_password="y")
    with app.app_context():
        assert get_setting("email.smtp_password") == ""


def save_policy(auth, **overrides):
    data = {"issuer": "OpenSpecimen Prod", "drift": "1", "lockout_threshold": "5",
            "lockout_minutes": "15", "reset_link_minutes": "30", **overrides}
    return auth.post("/settings/authentication/policy", data)


def test_policy_is_saved(app, auth):
    auth.login_admin()
    assert save_policy(auth, drift="2", lockout_threshold="3").status_code == 302
    with app.app_context():
        assert get_setting("authentication.otp_issuer") == "OpenSpecimen Prod"
        assert get_setting("authentication.otp_drift_steps") == 2
        assert get_setting("authentication.lockout_threshold") == 3


@pytest.mark.parametrize("field,value,message", [
    ("drift", "3", "must be from 0 to 2"),
    ("drift", "-1", "must be from 0 to 2"),
    ("lockout_threshold", "0", "must be from 1 to 100"),
    ("lockout_minutes", "99999", "must be from 1 to 1440"),
    ("reset_link_minutes", "1", "must be from 5 to 1440"),
    ("reset_link_minutes", "1e9", "Not a valid integer value."),
    ("issuer", "", "Enter the account name."),
    ("issuer", "Open:Specimen", "without a colon"),
    ("issuer", "x" * 61, "Field cannot be longer than 60 characters."),
])
def test_invalid_policy_is_refused_whole(app, auth, field, value, message):
    auth.login_admin()
    response = save_policy(auth, **{field: value, "lockout_minutes": "20"}
                           if field != "lockout_minutes" else {field: value})
    assert response.status_code == 400
    assert message in page_text(response)
    with app.app_context():
        assert get_setting("authentication.lockout_minutes") == 15


def test_users_list_filters(app, client, auth):
    with app.app_context():
        add_user("alice")
        bob, _ = add_user("bob", enrolled=False)
        bob.email_notifications = False
        db.session.commit()
    auth.login_admin()
    page = page_text(client.get("/settings/users"))
    for words in ("alice", "bob", "root", "enrolled", "none", "never"):
        assert words in page
    assert "bob" not in page_text(client.get("/settings/users?q=ali"))
    assert "alice" not in page_text(client.get("/settings/users?state=none"))
    only_muted = page_text(client.get("/settings/users?notifications_off=y"))
    assert "bob@example.org" in only_muted and "alice@example.org" not in only_muted
    assert "alice" not in page_text(client.get("/settings/users?q=%25"))  # LIKE wildcards inert
    assert client.get("/settings/users?state=bogus").status_code == 400
    assert client.get("/settings/users?page=abc").status_code == 200


def test_users_list_with_100000_users(app, client, auth):
    with app.app_context():
        rows = [{"login_name": f"user{i:06d}", "login_key": f"user{i:06d}",
                 "email": f"user{i:06d}@example.org", "first_name": "", "last_name": "",
                 "password_hash": "x", "is_super_admin": False, "active": True,
                 "email_notifications": True, "otp_algorithm": "SHA1", "otp_digits": 6,
                 "otp_period": 30, "failed_attempts": 0, "session_epoch": 0}
                for i in range(100_000)]
        db.session.execute(insert(User), rows)
        db.session.commit()
    auth.login_admin()
    first = page_text(client.get("/settings/users"))
    assert "Page 1 of 2001 (100001 in all)" in first
    assert first.count('<tr id="user-') == 50
    assert "root" in first  # sorted by login name: root comes before user000000
    last = page_text(client.get("/settings/users?page=2001"))
    assert "user099999" in last and last.count('<tr id="user-') == 1
    found = page_text(client.get("/settings/users?q=user099999"))
    assert found.count('<tr id="user-') == 1 and "user099999@example.org" in found


def user_named(app, login_name: str) -> User:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.login_key == login_key(login_name)))
        db.session.expunge(user)
        return user


def act(auth, app, login_name: str, action: str, htmx: bool = True):
    user_id = user_named(app, login_name).id
    headers = {"HX-Request": "true"} if htmx else {}
    return auth.post(f"/settings/users/{user_id}/{action}", headers=headers)


def test_deactivate_signs_the_user_out_and_reactivate(app, auth, smtp_server):
    with app.app_context():
        add_user("alice", enrolled=False)
    alice = app.test_client()
    from conftest import AuthActions

    AuthActions(alice).login("alice")
    assert alice.get("/").status_code == 200
    auth.login_admin()
    response = act(auth, app, "alice", "deactivate")
    assert response.status_code == 200 and "deactivated" in page_text(response)
    assert "<html" not in page_text(response) and page_text(response).lstrip().startswith("<tr")
    assert alice.get("/").status_code == 302  # signed out at once
    assert "deactivated" in page_text(AuthActions(alice).login("alice"))
    act(auth, app, "alice", "reactivate")
    assert AuthActions(alice).login("alice").status_code == 302


def test_admins_cannot_remove_the_last_super_admin(app, auth):
    auth.login_admin()
    response = act(auth, app, "root", "deactivate")
    assert response.status_code == 409
    assert "You cannot deactivate your own account." in page_text(response)
    with app.app_context():
        add_user("other", super_admin=True)
        db.session.execute(text("UPDATE users SET active = false WHERE login_key = 'root'"))
        db.session.commit()
        from osauth.services.errors import ValidationError
        from osauth.services.user_admin import set_active

        other = db.session.scalar(select(User).where(User.login_key == "other"))
        root = db.session.scalar(select(User).where(User.login_key == "root"))
        with pytest.raises(ValidationError, match="last active super admin"):
            set_active(other, False, actor=root, ip=None)


def test_unlock(app, auth, client):
    with app.app_context():
        add_user("alice")
        set_setting("authentication.two_factor_enabled", True)
        db.session.commit()
    from conftest import AuthActions

    for _ in range(5):
        AuthActions(app.test_client()).login("alice", otp="000000")
    assert user_named(app, "alice").locked_until is not None
    with app.app_context():
        set_setting("authentication.two_factor_enabled", False)
        db.session.commit()
    auth.login_admin()
    assert "locked" in page_text(client.get("/settings/users?locked=y"))
    response = act(auth, app, "alice", "unlock", htmx=False)
    assert response.status_code == 302
    assert user_named(app, "alice").locked_until is None
    assert user_named(app, "alice").failed_attempts == 0


def test_notifications_toggle(app, auth):
    with app.app_context():
        add_user("alice")
    auth.login_admin()
    act(auth, app, "alice", "notifications-off")
    assert user_named(app, "alice").email_notifications is False
    act(auth, app, "alice", "notifications-on")
    assert user_named(app, "alice").email_notifications is True


def test_force_reset_revokes_at_once_and_mails_a_link(app, auth, smtp_server):
    auth.login_admin()
    with app.app_context():
        _, secret = add_user("alice")
        set_setting("authentication.two_factor_enabled", True)
        db.session.commit()
    from conftest import AuthActions

    alice = app.test_client()
    AuthActions(alice).login("alice", otp=totp.current_code(secret))
    response = act(auth, app, "alice", "force-reset")
    assert "reset link is on its way" in page_text(response)
    assert user_named(app, "alice").two_factor_state == "none"
    assert alice.get("/").status_code == 302  # signed out
    assert deliver(app) == 1
    message = smtp_server.wait_for(1)[0]
    assert "Your administrator has reset the OTP secret code" in text_part(message)
    assert link_in(message)
    with app.app_context():
        assert db.session.scalar(select(AuditEvent.kind).where(
            AuditEvent.kind == "otp.force_reset")) is not None


def test_force_reset_says_when_no_email_can_go(app, auth, smtp_server):
    with app.app_context():
        alice, _ = add_user("alice")
        alice.email_notifications = False
        db.session.commit()
    auth.login_admin()
    assert "no email was sent" in page_text(act(auth, app, "alice", "force-reset"))


@pytest.mark.parametrize("path", ["/settings/users/999/unlock", "/settings/users/1/explode"])
def test_unknown_users_and_actions_are_404(auth, path):
    auth.login_admin()
    assert auth.post(path).status_code == 404


def test_add_user(app, client, auth):
    auth.login_admin()
    data = {"login_name": "dave", "email": "dave@example.org", "first_name": "Dave",
            "last_name": "Bowman", "password": PASSWORD}
    response = auth.post("/settings/users/new", data)
    assert response.status_code == 302
    assert user_named(app, "dave").email == "dave@example.org"
    again = auth.post("/settings/users/new", data)
    assert again.status_code == 400 and "is taken" in page_text(again)
    bad = auth.post("/settings/users/new", {**data, "login_name": "eve", "password": "short"})
    assert bad.status_code == 400 and "Field must be between 8 and 1024" in page_text(bad)
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 2


def test_audit_log_filters_and_pages(app, client, auth):
    with app.app_context():
        alice, _ = add_user("alice")
        from osauth.services import audit

        for _ in range(60):
            audit.record("sign_in.failed", subject=alice, ip="192.0.2.1")
        db.session.commit()
    auth.login_admin()
    page = page_text(client.get("/settings/audit"))
    assert "Page 1 of 2" in page and "sign_in.failed" in page and "192.0.2.1" in page
    only_alice = page_text(client.get("/settings/audit?user=ALICE&kind=user."))
    assert only_alice.count("<tr>") == 2  # the header row and alice's user.created
    assert "No event matches." in page_text(client.get("/settings/audit?user=nobody"))
    assert client.get("/settings/audit?kind=" + "x" * 51).status_code == 400


def test_profile_shows_the_state_and_switches_notifications(app, client, auth):
    with app.app_context():
        add_user("alice", enrolled=False)
    auth.login("alice")
    page = page_text(client.get("/profile"))
    assert "No authenticator is set up" in page and "Reset OTP Secret Code?" in page
    response = auth.post("/profile/notifications", {}, page="/profile")
    assert response.status_code == 302
    assert user_named(app, "alice").email_notifications is False
    auth.post("/profile/notifications", {"email_notifications": "y"}, page="/profile")
    assert user_named(app, "alice").email_notifications is True
    assert "Settings" not in page_text(client.get("/profile")).split("<main>")[0]


def test_settings_take_effect_without_a_restart(app, app_factory, smtp_server):
    """Two apps stand for two workers: a change through one is seen by the other."""
    other = app_factory()
    configure_email(app, smtp_server.port)
    with other.app_context():
        assert get_setting("email.smtp_port") == smtp_server.port


@pytest.mark.parametrize("page", ["200000000000000000", "-5", "0", "abc", "1e3"])
def test_odd_page_numbers_are_harmless(app, client, auth, page):
    auth.login_admin()
    for path in ("/settings/users", "/settings/audit"):
        assert client.get(f"{path}?page={page}").status_code == 200


@pytest.mark.parametrize("user_id", ["99999999999999999999999", "9223372036854775808", "0"])
def test_huge_user_ids_are_404(auth, user_id):
    auth.login_admin()
    assert auth.post(f"/settings/users/{user_id}/unlock").status_code == 404
