from __future__ import annotations

from urllib.parse import urlsplit

from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from ..extensions import limiter
from ..services import errors
from ..services.settings import get_setting
from ..services.user_admin import set_notifications
from ..services.users import CodeRequired, authenticate
from ..web import client_ip
from . import bp
from .forms import LoginForm, NotificationsForm


def _login_rate_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _safe_next(target: str | None) -> str:
    """Only a path on this site, so the login page cannot send anyone elsewhere."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("auth.home")


@bp.get("/")
@login_required
def home():
    return render_template("auth/home.html")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_rate_limit, methods=["POST"])
def login():
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("auth.home"))
    form = LoginForm()
    two_factor = get_setting("authentication.two_factor_enabled")
    if request.method == "GET":
        return render_template("auth/login.html", form=form, show_otp=False)
    if not form.validate():
        return render_template("auth/login.html", form=form, show_otp=two_factor), 400
    wrong = ("The login name, password or OTP code is wrong." if two_factor
             else "The login name or password is wrong.")
    try:
        user = authenticate(form.login_name.data, form.password.data, form.otp.data or "",
                            ip=client_ip())
    except CodeRequired:
        return _refuse(form, two_factor, "Enter the OTP code from your authenticator app.", 400)
    except errors.AccountLocked as locked:
        return _refuse(form, two_factor, "This account is locked after too many failed "
                       f"attempts. Try again after {locked.until:%H:%M} UTC.", 403)
    except errors.AccountInactive:
        return _refuse(form, two_factor, "This account is deactivated. Ask an administrator "
                       "to reactivate it.", 403)
    except errors.EnrolmentRequired:
        return _refuse(form, two_factor, "Your account has no authenticator yet. Use “Reset "
                       "OTP Secret Code?” to set one up, then sign in with its code.", 403)
    except errors.InvalidCredentials:
        return _refuse(form, two_factor, wrong, 401)
    session.clear()  # a fresh session at sign-in: nothing from before it carries over
    session.permanent = True
    login_user(user)
    return redirect(_safe_next(request.args.get("next")))


def _refuse(form: LoginForm, two_factor: bool, message: str, status: int):
    """The form again, without the secrets typed into it."""
    form.password.data = ""
    form.otp.data = ""
    return render_template("auth/login.html", form=form, show_otp=two_factor,
                           error=message), status


@bp.get("/login/otp-field")
def otp_field():
    """The OTP field while 2FA is on, nothing otherwise: the same for everyone."""
    return render_template("auth/_otp_field.html", form=LoginForm())


@bp.post("/logout")
def logout():
    logout_user()
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("auth.login"))


@bp.get("/profile")
@login_required
def profile():
    return render_template("auth/profile.html", form=NotificationsForm(
        data={"email_notifications": current_user.email_notifications}))


@bp.post("/profile/notifications")
@login_required
def profile_notifications():
    form = NotificationsForm()
    if not form.validate():
        abort(400)
    set_notifications(current_user, form.email_notifications.data, actor=current_user,
                      ip=client_ip())
    flash("Your email notifications are " + ("on." if form.email_notifications.data
                                              else "off."))
    return redirect(url_for("auth.profile"))
