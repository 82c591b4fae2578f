"""The login page in a real Chromium: HTMX reveals the OTP field only while 2FA is on."""

from __future__ import annotations

from conftest import PASSWORD, add_user, enable_two_factor

from osauth.services import totp


def test_otp_field_is_absent_while_2fa_is_off(app, live_server, page):
    with app.app_context():
        add_user("alice", enrolled=False)
    with page.expect_response(lambda r: "/login/otp-field" in r.url):
        page.goto(f"{live_server.url}/login")
    page.wait_for_load_state("networkidle")
    assert page.get_by_label("Login name").is_visible()
    assert page.get_by_label("OTP code").count() == 0
    assert page.get_by_text("Reset OTP Secret Code?").count() == 0
    page.get_by_label("Login name").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()
    assert page.console_errors == []


def test_otp_field_appears_and_a_code_signs_in(app, live_server, page):
    with app.app_context():
        _, secret = add_user("alice")
        enable_two_factor()
    page.goto(f"{live_server.url}/login")
    otp = page.get_by_label("OTP code")
    otp.wait_for()  # swapped in by htmx after the page loaded
    assert otp.get_attribute("autocomplete") == "one-time-code"
    assert otp.get_attribute("inputmode") == "numeric"
    assert page.get_by_role("link", name="Reset OTP Secret Code?").is_visible()
    page.get_by_label("Login name").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    otp.fill(totp.current_code(secret))
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()
    assert "Welcome, Alice" in page.content()
    assert page.console_errors == []  # nothing blocked by the CSP, no script errors


def test_a_wrong_code_shows_the_generic_error(app, live_server, page):
    with app.app_context():
        _, secret = add_user("alice")
        enable_two_factor()
    page.goto(f"{live_server.url}/login")
    page.get_by_label("OTP code").wait_for()
    page.get_by_label("Login name").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    right = totp.current_code(secret)
    page.get_by_label("OTP code").fill(f"{(int(right) + 1) % 1_000_000:06d}")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").wait_for()
    alert = page.get_by_role("alert").inner_text()
    assert "The login name, password or OTP code is wrong." in alert
    assert page.get_by_label("OTP code").input_value() == ""
