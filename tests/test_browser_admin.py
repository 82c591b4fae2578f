"""The dashboard in a real Chromium: email set-up, the test email in place, enabling 2FA,
and a forced reset from the user list."""

from __future__ import annotations

from conftest import PASSWORD, add_user, deliver, text_part


def sign_in_as_root(page, url: str) -> None:
    page.goto(f"{url}/login")
    page.get_by_label("Login name").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()


def test_admin_configures_email_tests_it_and_enables_2fa(app, live_server, smtp_server, page,
                                                          browser):
    with app.app_context():
        add_user("root", super_admin=True, enrolled=False)
        add_user("alice")
    sign_in_as_root(page, live_server.url)
    page.get_by_role("link", name="Settings").click()
    with page.expect_response(lambda r: r.url.endswith("/two-factor")) as refused:
        page.get_by_role("button", name="Enable", exact=True).click()
    assert refused.value.status == 409
    page.get_by_text("Two-factor authentication was not enabled.").wait_for()  # in place
    page.console_errors.remove(  # Chromium logs every 4xx; this one is expected
        "Failed to load resource: the server responded with a status of 409 (CONFLICT)")

    page.get_by_role("link", name="Email", exact=True).click()
    page.get_by_label("SMTP host").fill("127.0.0.1")
    page.get_by_label("SMTP port").fill(str(smtp_server.port))
    page.get_by_label("Connection security").select_option("none")
    page.get_by_label("Sender address").fill("osauth@example.org")
    page.get_by_label("Email notifications").check()
    page.get_by_role("button", name="Save").click()
    page.get_by_text("The email settings are saved.").wait_for()

    email_url = page.url
    page.get_by_role("button", name="Send test email").click()
    page.get_by_text("A test email went to root@example.org.").wait_for()
    assert page.url == email_url  # shown in place, no navigation
    assert "test email" in text_part(smtp_server.wait_for(1)[0])

    page.get_by_role("link", name="Authentication").click()
    page.get_by_role("button", name="Enable", exact=True).click()
    page.get_by_text("You have no authenticator yet either").wait_for()
    page.get_by_role("button", name="Enable two-factor authentication for everyone").click()
    page.get_by_text("Two-factor authentication is on.").wait_for()
    assert page.get_by_role("button", name="Disable").is_visible()
    assert page.console_errors == []

    visitor = browser.new_context().new_page()
    visitor.goto(f"{live_server.url}/login")
    visitor.get_by_label("OTP code").wait_for(timeout=10_000)
    visitor.context.close()


def test_force_reset_from_the_user_list_reaches_the_mailbox(app, live_server, smtp_server,
                                                            page):
    app.config["BASE_URL"] = live_server.url
    with app.app_context():
        add_user("root", super_admin=True, enrolled=False)
        add_user("alice", email="alice@lab.example.org")
    sign_in_as_root(page, live_server.url)
    page.get_by_role("link", name="Users").click()
    row = page.locator("tr", has_text="alice@lab.example.org")
    assert row.get_by_role("cell", name="enrolled").is_visible()
    row.get_by_role("button", name="Force OTP reset").click()
    page.get_by_text("The authenticator of alice is revoked").wait_for()
    row = page.locator("tr", has_text="alice@lab.example.org")
    assert row.get_by_role("cell", name="none", exact=True).is_visible()  # swapped in place
    assert deliver(app) == 1
    message = smtp_server.wait_for(1)[0]
    assert message["To"] == "alice@lab.example.org"
    assert f"{live_server.url}/otp-reset/" in text_part(message)
    assert page.console_errors == []
