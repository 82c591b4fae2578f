from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from ..extensions import db
from ..models import User
from ..services import errors
from ..services.audit import events_query
from ..services.email_settings import EmailTestFailed, save_email_settings, send_test_email
from ..services.otp_reset import force_otp_reset
from ..services.settings import get_setting
from ..services.two_factor import (
    disable_two_factor,
    enable_impact,
    enable_two_factor,
    missing_for_two_factor,
    save_policy,
)
from ..services.user_admin import is_locked, set_active, set_notifications, unlock, users_query
from ..services.users import create_user
from ..web import client_ip, is_htmx, page_number, render_page_or_block, require_super_admin
from . import bp
from .forms import (
    ActionForm,
    AuditFilterForm,
    EmailForm,
    NewUserForm,
    PolicyForm,
    SendTestEmailForm,
    TwoFactorForm,
    UserFilterForm,
)

PER_PAGE = 50
bp.before_request(require_super_admin)


@bp.get("")
def index():
    return redirect(url_for(".authentication"))


def _policy_form() -> PolicyForm:
    return PolicyForm(data={
        "issuer": get_setting("authentication.otp_issuer"),
        "drift": get_setting("authentication.otp_drift_steps"),
        "lockout_threshold": get_setting("authentication.lockout_threshold"),
        "lockout_minutes": get_setting("authentication.lockout_minutes"),
        "reset_link_minutes": get_setting("authentication.reset_link_minutes"),
    })


def _authentication_page(status: int = 200, **context):
    context.setdefault("policy_form", _policy_form())
    context.setdefault("two_factor_form", TwoFactorForm())
    context.setdefault("missing", missing_for_two_factor())
    return render_page_or_block("admin_settings/authentication.html", "two_factor",
                                **context), status


@bp.get("/authentication")
def authentication():
    return _authentication_page()


@bp.post("/authentication/two-factor")
def two_factor():
    form = TwoFactorForm()
    if not form.validate():
        abort(400)
    if form.disable.data:
        disable_two_factor(actor=current_user, via="dashboard", ip=client_ip())
        return _authentication_page(message="Two-factor authentication is off.")
    missing = missing_for_two_factor()
    if missing:
        return _authentication_page(409, missing=missing,
                                    error="Two-factor authentication was not enabled.")
    if form.confirm.data != "yes":
        return _authentication_page(impact=enable_impact(current_user))
    try:
        enable_two_factor(actor=current_user, via="dashboard", ip=client_ip())
    except errors.TwoFactorNotReady as error:
        return _authentication_page(409, error=str(error))
    return _authentication_page(message="Two-factor authentication is on.")


@bp.post("/authentication/policy")
def policy():
    form = PolicyForm()
    if form.validate():
        try:
            save_policy(issuer=form.issuer.data, drift=form.drift.data,
                        lockout_threshold=form.lockout_threshold.data,
                        lockout_minutes=form.lockout_minutes.data,
                        reset_link_minutes=form.reset_link_minutes.data,
                        actor=current_user, ip=client_ip())
        except errors.ValidationError as error:
            form.issuer.errors = [str(error)]
        else:
            flash("The OTP policy is saved.")
            return redirect(url_for(".authentication"))
    return render_template("admin_settings/authentication.html", policy_form=form,
                           two_factor_form=TwoFactorForm(), missing=missing_for_two_factor()), 400


def _email_form() -> EmailForm:
    return EmailForm(data={
        "smtp_host": get_setting("email.smtp_host"),
        "smtp_port": get_setting("email.smtp_port"),
        "connection_security": get_setting("email.connection_security"),
        "smtp_username": get_setting("email.smtp_username"),
        "sender": get_setting("email.sender"),
        "notifications": get_setting("notifications.system_enabled"),
    })


def _email_page(form: EmailForm, status: int = 200, **context):
    return render_page_or_block(
        "admin_settings/email.html", "test_result", form=form, test_form=SendTestEmailForm(),
        password_stored=bool(get_setting("email.smtp_password")), **context), status


@bp.route("/email", methods=["GET", "POST"])
def email():
    if request.method == "GET":
        return _email_page(_email_form())
    form = EmailForm()
    if form.validate():
        password = "" if form.clear_password.data else (form.smtp_password.data or None)
        try:
            save_email_settings(
                host=form.smtp_host.data, port=form.smtp_port.data,
                security=form.connection_security.data, username=form.smtp_username.data or "",
                password=password, sender=form.sender.data,
                notifications=form.notifications.data, actor=current_user, ip=client_ip())
        except errors.ValidationError as error:
            return _email_page(form, 400, error=str(error))
        flash("The email settings are saved. Send a test email to confirm they work.")
        return redirect(url_for(".email"))
    return _email_page(form, 400)


@bp.post("/email/test")
def test_email():
    if not SendTestEmailForm().validate():
        abort(400)
    try:
        send_test_email(current_user, ip=client_ip())
    except EmailTestFailed as error:
        return _email_page(_email_form(), 502, test_error=str(error))
    return _email_page(_email_form(), test_ok=f"A test email went to {current_user.email}.")


@bp.get("/users")
def users():
    filters = UserFilterForm(request.args)
    if not filters.validate():
        return render_template("admin_settings/users.html", filters=filters, page=None,
                               action_form=ActionForm(), is_locked=is_locked), 400
    query = users_query(text=filters.q.data or "", state=filters.state.data or "",
                        locked=filters.locked.data,
                        notifications_off=filters.notifications_off.data)
    page = db.paginate(query, page=page_number(), per_page=PER_PAGE, error_out=False)
    return render_template("admin_settings/users.html", filters=filters, page=page,
                           action_form=ActionForm(), is_locked=is_locked)


@bp.route("/users/new", methods=["GET", "POST"])
def new_user():
    form = NewUserForm()
    if form.is_submitted():
        if form.validate():
            try:
                user = create_user(form.login_name.data, form.email.data, form.password.data,
                                   first_name=form.first_name.data or "",
                                   last_name=form.last_name.data or "",
                                   super_admin=form.super_admin.data, actor=current_user,
                                   ip=client_ip())
            except errors.ValidationError as error:
                return render_template("admin_settings/new_user.html", form=form,
                                       error=str(error)), 400
            flash(f"{user.login_name} is added. They enrol with “Reset OTP Secret Code?”.")
            return redirect(url_for(".users", q=user.login_name))
        return render_template("admin_settings/new_user.html", form=form), 400
    return render_template("admin_settings/new_user.html", form=form)


ACTIONS = {
    "deactivate": lambda user: set_active(user, False, actor=current_user, ip=client_ip()),
    "reactivate": lambda user: set_active(user, True, actor=current_user, ip=client_ip()),
    "unlock": lambda user: unlock(user, actor=current_user, ip=client_ip()),
    "notifications-on": lambda user: set_notifications(user, True, actor=current_user,
                                                       ip=client_ip()),
    "notifications-off": lambda user: set_notifications(user, False, actor=current_user,
                                                        ip=client_ip()),
    "force-reset": lambda user: force_otp_reset(user, actor=current_user, ip=client_ip()),
}
DONE = {
    "deactivate": "{} is deactivated and signed out.",
    "reactivate": "{} is active again.",
    "unlock": "{} is unlocked.",
    "notifications-on": "Email notifications are on for {}.",
    "notifications-off": "Email notifications are off for {}.",
    "force-reset": "The authenticator of {} is revoked; a reset link is on its way.",
}


@bp.post("/users/<int(max=2147483647):user_id>/<action>")  # ids are 32-bit
def user_action(user_id: int, action: str):
    if action not in ACTIONS:
        abort(404)
    if not ActionForm().validate():
        abort(400)
    user = db.session.get(User, user_id) or abort(404)
    status, message, problem = 200, DONE[action].format(user.login_name), None
    try:
        result = ACTIONS[action](user)
    except errors.ValidationError as error:
        status, message, problem = 409, None, str(error)
    else:
        if action == "force-reset" and result is False:
            message = (f"The authenticator of {user.login_name} is revoked, but no email was "
                       "sent: their email notifications (or the system's) are off.")
    if is_htmx():
        return render_page_or_block("admin_settings/users.html", "user_row", user=user,
                                    action_form=ActionForm(), is_locked=is_locked,
                                    row_message=message, row_error=problem), status
    flash(message or problem)
    return redirect(url_for(".users", q=user.login_name))


@bp.get("/audit")
def audit_log():
    filters = AuditFilterForm(request.args)
    if not filters.validate():
        return render_template("admin_settings/audit.html", filters=filters, page=None), 400
    query = events_query(login_name=filters.user.data or "", kind=filters.kind.data or "")
    page = db.paginate(query, page=page_number(), per_page=PER_PAGE, error_out=False)
    users = {}
    ids = {i for event in page.items for i in (event.actor_id, event.subject_id) if i}
    if ids:
        users = dict(db.session.execute(select(User.id, User.login_name)
                                        .where(User.id.in_(ids))).all())
    return render_template("admin_settings/audit.html", filters=filters, page=page,
                           users=users)
