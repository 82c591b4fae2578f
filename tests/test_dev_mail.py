"""The development mail catcher and its page: the whole flow on one machine."""

from __future__ import annotations

import re

from conftest import add_user, configure_email, deliver, free_port

from osauth.dev_mail.catcher import start_mail_catcher


def test_caught_mail_is_shown_with_its_qr_code(app, client, auth, tmp_path):
    app.config["DEV_MAIL_DIR"] = str(tmp_path / "caught")
    port = free_port()
    catcher = start_mail_catcher(tmp_path / "caught", port)
    try:
        configure_email(app, port)
        with app.app_context():
            add_user("alice", enrolled=False)
        token = auth.csrf_token("/otp-reset")
        client.post("/otp-reset", data={"csrf_token": token, "login_name": "alice"})
        assert deliver(app) == 1
        inbox = client.get("/dev/mail").get_data(as_text=True)
        assert "Reset your OTP secret code" in inbox
        first = re.search(r'href="(/dev/mail/\d+)"', inbox).group(1)
        page = client.get(first).get_data(as_text=True)
        link = re.search(r'href="http://127\.0\.0\.1:5000(/otp-reset/[\w-]+)"', page).group(1)

        token = auth.csrf_token(link)
        assert client.post(link, data={"csrf_token": token}).status_code == 200
        assert deliver(app) == 1
        inbox = client.get("/dev/mail").get_data(as_text=True)
        second = re.search(r'href="(/dev/mail/\d+)">Your new OTP secret code', inbox).group(1)
        page = client.get(second).get_data(as_text=True)
        image = re.search(r'<img src="(/dev/mail/\d+/otp-qr\.png)"', page).group(1)
        response = client.get(image)
        assert response.mimetype == "image/png"
        assert response.data.startswith(b"\x89PNG")
    finally:
        catcher.stop()


def test_unknown_caught_mail_is_404(app, client, tmp_path):
    app.config["DEV_MAIL_DIR"] = str(tmp_path)
    for path in ("/dev/mail/123", "/dev/mail/../../etc/passwd", "/dev/mail/x.y/otp-qr.png"):
        assert client.get(path).status_code == 404


def test_the_page_is_only_for_this_machine(client):
    assert client.get("/dev/mail").status_code == 200
    assert client.get("/dev/mail", environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 404


def test_the_page_is_absent_outside_development(app_factory):
    production = app_factory(DEVELOPMENT=False)
    assert production.test_client().get("/dev/mail").status_code == 404


def test_dev_server_is_refused_outside_development(app_factory):
    production = app_factory(DEVELOPMENT=False)
    result = production.test_cli_runner().invoke(args=["dev-server"])
    assert result.exit_code == 1 and "development only" in result.output
