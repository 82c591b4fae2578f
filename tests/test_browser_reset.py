"""The reset path in a real Chromium, through both emails, to a signed-in page."""

from __future__ import annotations

from urllib.parse import urlsplit

from conftest import PASSWORD, add_user, enable_two_factor, link_in, secret_in

from osauth.services import totp
from osauth.services.worker import start_delivery_thread


def test_enrol_through_both_emails_and_sign_in(app, live_server, smtp_server, page):
    app.config["BASE_URL"] = live_server.url
    with app.app_context():
        add_user("alice", enrolled=False)
        enable_two_factor()
    worker = start_delivery_thread(app, interval=0.1)
    try:
        page.goto(f"{live_server.url}/login")
        page.get_by_role("link", name="Reset OTP Secret Code?").click()
        page.get_by_label("Login name").fill("alice")
        page.get_by_role("button", name="Email Reset OTP Secret Code link").click()
        page.get_by_text("If an account with that login name exists").wait_for()

        link = link_in(smtp_server.wait_for(1)[0])
        assert urlsplit(link).netloc == urlsplit(live_server.url).netloc
        page.goto(link)
        page.get_by_role("button", name="Reset my OTP secret code").click()
        page.get_by_text("Check your email").first.wait_for()

        secret = secret_in(smtp_server.wait_for(2)[1])
        page.get_by_role("link", name="Sign in").click()
        page.get_by_label("OTP code").wait_for()
        page.get_by_label("Login name").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_label("OTP code").fill(totp.current_code(secret))
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name="Sign out").wait_for()
        assert "Welcome, Alice" in page.content()
        assert page.console_errors == []
    finally:
        worker.stop()
