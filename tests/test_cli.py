from __future__ import annotations

import pytest
from conftest import add_user, configure_email, verify_email
from sqlalchemy import func, select

from osauth.extensions import db
from osauth.models import AuditEvent, User
from osauth.services.settings import get_setting, set_setting


def test_create_user_with_password_on_stdin(app, runner):
    result = runner.invoke(args=["create-user", "Alice", "--email", "alice@example.org",
                                 "--first-name", "Alice", "--last-name", "Liddell",
                                 "--super-admin", "--password-stdin"],
                           input="a long password\n")
    assert result.exit_code == 0, result.output
    assert "Created super admin Alice <alice@example.org>" in result.output
    with app.app_context():
        user = db.session.scalar(select(User))
        assert (user.login_key, user.first_name, user.is_super_admin) == ("alice", "Alice", True)
        assert user.password_hash.startswith("scrypt:")
        assert "a long password" not in user.password_hash


def test_create_user_prompts_twice(app, runner):
    result = runner.invoke(args=["create-user", "bob", "--email", "bob@example.org"],
                           input="a long password\na long password\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("Password") == 1 and "Repeat for confirmation" in result.output


def test_create_user_refuses_a_mismatched_confirmation(app, runner):
    result = runner.invoke(args=["create-user", "bob", "--email", "bob@example.org"],
                           input="a long password\nanother one\n")
    assert result.exit_code != 0
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 0


@pytest.mark.parametrize("args,stdin,message", [
    (["ALICE", "--email", "other@example.org"], "a long password\n", "is taken"),
    (["bob", "--email", "not-an-email"], "a long password\n", "email address is not valid"),
    (["bob", "--email", "bob@example.org"], "\n", "password is empty"),
    (["bob", "--email", "bob@example.org"], "short\n", "at least 8 characters"),
    (["b o b", "--email", "bob@example.org"], "a long password\n", "may not contain spaces"),
    (["b" * 151, "--email", "bob@example.org"], "a long password\n", "longer than 150"),
    (["bob\x07", "--email", "bob@example.org"], "a long password\n", "control characters"),
    (["bob", "--email", "bob@example.org", "--first-name", "x" * 101], "a long password\n",
     "first name must be at most 100"),
])
def test_create_user_errors(app, runner, args, stdin, message):
    with app.app_context():
        add_user("alice")
    result = runner.invoke(args=["create-user", *args, "--password-stdin"], input=stdin)
    assert result.exit_code == 1
    assert message in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 1  # nothing half-written


def test_create_user_requires_an_email(runner):
    result = runner.invoke(args=["create-user", "bob", "--password-stdin"], input="x\n")
    assert result.exit_code == 2 and "--email" in result.output


def test_two_factor_enable_is_refused_until_email_works(app, runner, smtp_server):
    with app.app_context():
        set_setting("email.smtp_host", "")
        db.session.commit()
    result = runner.invoke(args=["two-factor", "enable"])
    assert result.exit_code == 1
    assert "Missing: the email configuration (SMTP host, SMTP port and sender address)" in (
        result.output)
    configure_email(app, smtp_server.port)
    result = runner.invoke(args=["two-factor", "enable"])
    assert result.exit_code == 1
    assert "a successful test email since the email settings last changed" in result.output
    with app.app_context():
        set_setting("notifications.system_enabled", False)
        db.session.commit()
    result = runner.invoke(args=["two-factor", "enable"])
    assert "system-level email notifications turned on" in result.output
    assert runner.invoke(args=["two-factor", "status"]).output == "off\n"


def test_two_factor_status_enable_disable(app, runner, smtp_server):
    verify_email(app, smtp_server)
    assert runner.invoke(args=["two-factor", "status"]).output == "off\n"
    result = runner.invoke(args=["two-factor", "enable"])
    assert result.exit_code == 0 and "is on" in result.output
    assert runner.invoke(args=["two-factor", "status"]).output == "on\n"
    result = runner.invoke(args=["two-factor", "disable"])
    assert result.exit_code == 0 and "is off" in result.output
    assert runner.invoke(args=["two-factor", "status"]).output == "off\n"
    with app.app_context():
        assert not get_setting("authentication.two_factor_enabled")
        kinds = list(db.session.scalars(select(AuditEvent.kind).order_by(AuditEvent.id)))
        assert kinds[-2:] == ["two_factor.enabled", "two_factor.disabled"]


def test_two_factor_unknown_subcommand(runner):
    result = runner.invoke(args=["two-factor", "maybe"])
    assert result.exit_code == 2 and "No such command" in result.output


def test_demo_admin_is_created_once(app, runner):
    first = runner.invoke(args=["create-demo-admin"])
    assert first.exit_code == 0 and "Login name: admin  Password: " in first.output
    second = runner.invoke(args=["create-demo-admin"])
    assert second.exit_code == 0 and "exists already" in second.output
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 1


def test_demo_admin_is_refused_outside_development(app, runner):
    app.config["DEVELOPMENT"] = False
    result = runner.invoke(args=["create-demo-admin"])
    assert result.exit_code == 1 and "development only" in result.output


def test_rotate_keys_reencrypts_every_secret(app, runner, smtp_server):
    from cryptography.fernet import Fernet

    from osauth.services.mail import smtp_password
    from osauth.services.otp_reset import request_otp_reset
    from osauth.services.secrets import decrypt, encrypt
    from osauth.services.settings import set_setting
    from osauth.services.worker import work_once

    configure_email(app, smtp_server.port)
    smtp_server.stop()  # so the queued email stays queued
    with app.app_context():
        user, secret = add_user("alice")
        set_setting("email.smtp_password", encrypt("relay pw"))
        db.session.commit()
        request_otp_reset("alice", ip=None)
        work_once()
    old_keys = app.config["OTP_ENCRYPTION_KEY_LIST"]
    new_key = Fernet.generate_key().decode()
    app.config["OTP_ENCRYPTION_KEY_LIST"] = [new_key, *old_keys]
    result = runner.invoke(args=["rotate-keys"])
    assert result.exit_code == 0
    assert "Re-encrypted 1 otp secrets, 1 settings, 1 queued emails." in result.output
    app.config["OTP_ENCRYPTION_KEY_LIST"] = [new_key]  # the old key dropped
    with app.app_context():
        user = db.session.scalar(select(User))
        assert decrypt(user.otp_secret) == secret
        assert smtp_password() == "relay pw"
        from osauth.models import OutboxMessage

        assert "Reset my OTP secret code" in decrypt(db.session.scalar(
            select(OutboxMessage.payload)))
        assert "keys.rotated" in db.session.scalars(select(AuditEvent.kind)).all()
