"""Screenshots for the README, taken in Chromium from a running site (so they stay true).

    .venv/bin/python scripts/screenshots.py [OUT_DIR]   (default docs/screenshots)

It builds a throwaway site (SQLite in a temporary folder, the development mail catcher),
walks the flows a user and an admin see, and saves one PNG per page.
"""

from __future__ import annotations

import re
import socket
import sys
import tempfile
import threading
from pathlib import Path

from cryptography.fernet import Fernet
from flask_migrate import upgrade
from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from osauth import create_app  # noqa: E402
from osauth.dev_mail.catcher import start_mail_catcher  # noqa: E402
from osauth.extensions import db  # noqa: E402
from osauth.services import totp  # noqa: E402
from osauth.services.email_settings import send_test_email  # noqa: E402
from osauth.services.secrets import encrypt  # noqa: E402
from osauth.services.settings import set_setting  # noqa: E402
from osauth.services.two_factor import enable_two_factor  # noqa: E402
from osauth.services.users import create_user  # noqa: E402
from osauth.services.worker import start_delivery_thread  # noqa: E402

PASSWORD = "a demo password"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_site(folder: Path, base_url: str, mail_port: int):
    app = create_app({
        "DEVELOPMENT": True, "SECRET_KEY": "screenshots", "BASE_URL": base_url,
        "DATABASE_URL": f"sqlite:///{folder / 'osauth.sqlite'}",
        "OTP_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DEV_MAIL_DIR": str(folder / "mail"), "MAIL_RETRY_BASE_SECONDS": 1,
    })
    with app.app_context():
        upgrade()
        admin = create_user("admin", "admin@lab.example.org", PASSWORD, first_name="Ada",
                            last_name="Admin", super_admin=True)
        secret = totp.new_secret()
        admin.otp_secret = encrypt(secret)
        for login, first, last in [("jdoe", "Jane", "Doe"), ("rsmith", "Raj", "Smith"),
                                   ("mlopez", "Maria", "Lopez")]:
            create_user(login, f"{login}@lab.example.org", PASSWORD, first_name=first,
                        last_name=last)
        set_setting("email.smtp_host", "127.0.0.1")
        set_setting("email.smtp_port", mail_port)
        set_setting("email.sender", "osauth@lab.example.org")
        set_setting("authentication.otp_issuer", "OpenSpecimen Prod")
        db.session.commit()
        send_test_email(admin)
        enable_two_factor(actor=admin, via="screenshots")
    return app, secret


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port, mail_port = free_port(), free_port()
        url = f"http://127.0.0.1:{port}"
        catcher = start_mail_catcher(folder / "mail", mail_port)
        app, admin_secret = build_site(folder, url, mail_port)
        server = make_server("127.0.0.1", port, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        worker = start_delivery_thread(app, interval=0.2)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                                     args=CHROMIUM_FLAGS)
                page = browser.new_page(viewport={"width": 1100, "height": 760})
                page.set_default_timeout(15_000)
                shoot = lambda name: page.screenshot(path=str(out / f"{name}.png"),  # noqa: E731
                                                     full_page=True)

                page.goto(f"{url}/login")
                page.get_by_label("OTP code").wait_for()
                shoot("login")

                page.get_by_role("link", name="Reset OTP Secret Code?").click()
                page.get_by_label("Login name").fill("jdoe")
                page.get_by_role("button", name="Email Reset OTP Secret Code link").click()
                page.get_by_text("If an account with that login name exists").wait_for()
                shoot("reset-request")

                def open_caught(subject: str) -> None:
                    """The mail worker runs every 0.2 s: reload the inbox until it is there."""
                    for _ in range(75):
                        page.goto(f"{url}/dev/mail")
                        if page.get_by_role("link", name=subject).count():
                            break
                        page.wait_for_timeout(200)
                    page.get_by_role("link", name=subject).click()

                open_caught("Reset your OTP secret code")
                shoot("email-reset-link")
                link = re.search(r"http://127\.0\.0\.1:\d+/otp-reset/[\w-]+",
                                 page.content()).group(0)
                page.goto(link)
                shoot("reset-landing")
                page.get_by_role("button", name="Reset my OTP secret code").click()
                page.get_by_text("Check your email").first.wait_for()
                open_caught("Your new OTP secret code")
                page.get_by_role("img", name="Inline image otp-qr").wait_for()
                shoot("email-new-secret")

                page.goto(f"{url}/login")
                page.get_by_label("OTP code").wait_for()
                page.get_by_label("Login name").fill("admin")
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_label("OTP code").fill(totp.current_code(admin_secret))
                page.get_by_role("button", name="Sign in").click()
                page.get_by_role("button", name="Sign out").wait_for()
                for name, path in [("settings-authentication", "/settings/authentication"),
                                   ("settings-email", "/settings/email"),
                                   ("users", "/settings/users"),
                                   ("audit-log", "/settings/audit"),
                                   ("profile", "/profile")]:
                    page.goto(f"{url}{path}")
                    shoot(name)
                browser.close()
        finally:
            worker.stop()
            server.shutdown()
            catcher.stop()
    print(f"screenshots written to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots")
