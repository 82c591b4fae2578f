from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
    SubmitField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from ..forms import printable, strip
from ..models import EMAIL_MAX, LOGIN_NAME_MAX, NAME_MAX
from ..services.users import PASSWORD_MAX, PASSWORD_MIN


def whole_number(label: str, low: int, high: int, **kwargs) -> IntegerField:
    return IntegerField(label, validators=[
        InputRequired(f"Enter the {label.lower()}."),
        NumberRange(low, high, f"The {label.lower()} must be from {low} to {high}."),
    ], render_kw={"min": low, "max": high}, **kwargs)


class TwoFactorForm(FlaskForm):
    """Enable or Disable; enabling needs ``confirm`` after the impact was shown."""

    confirm = HiddenField()
    enable = SubmitField("Enable")
    disable = SubmitField("Disable")


class PolicyForm(FlaskForm):
    issuer = StringField(
        "Account name in authenticator apps", filters=[strip],
        validators=[InputRequired("Enter the account name."), Length(max=60), printable],
        description='Shown in the app above the code, e.g. "OpenSpecimen Prod".')
    drift = whole_number("Allowed clock drift (time steps of 30 s)", 0, 2)
    lockout_threshold = whole_number("Failed attempts before lockout", 1, 100)
    lockout_minutes = whole_number("Lockout duration (minutes)", 1, 24 * 60)
    reset_link_minutes = whole_number("Reset link lifetime (minutes)", 5, 24 * 60)
    save = SubmitField("Save")


class EmailForm(FlaskForm):
    smtp_host = StringField("SMTP host", filters=[strip], validators=[
        InputRequired("Enter the SMTP host."), Length(max=253), printable])
    smtp_port = whole_number("SMTP port", 1, 65535)
    connection_security = SelectField("Connection security", choices=[
        SelectChoice("none", "None"), SelectChoice("starttls", "STARTTLS"),
        SelectChoice("ssl", "SSL/TLS")])
    smtp_username = StringField("SMTP username", filters=[strip],
                                validators=[Optional(), Length(max=254), printable],
                                render_kw={"autocomplete": "off"})
    smtp_password = PasswordField(
        "SMTP password", validators=[Optional(), Length(max=1024)],
        description="Kept encrypted and never shown again. Leave blank to keep the stored one.",
        render_kw={"autocomplete": "new-password"})
    clear_password = BooleanField("Remove the stored password")
    sender = EmailField("Sender address", filters=[strip], validators=[
        InputRequired("Enter the sender address."), Length(max=EMAIL_MAX)])
    notifications = BooleanField("Email notifications",
                                 description="System level: no email goes out while this is off.")
    save = SubmitField("Save")


class SendTestEmailForm(FlaskForm):
    send = SubmitField("Send test email")


class UserFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search form

    q = StringField("Search", filters=[strip], validators=[Optional(), Length(max=150),
                                                            printable])
    state = SelectField("2FA", choices=[
        SelectChoice("", "Any"), SelectChoice("enrolled", "Enrolled"),
        SelectChoice("pending", "Pending"), SelectChoice("none", "None")], default="")
    locked = BooleanField("Locked only")
    notifications_off = BooleanField("Notifications off only")


class NewUserForm(FlaskForm):
    login_name = StringField("Login name", filters=[strip], validators=[
        InputRequired("Enter a login name."), Length(max=LOGIN_NAME_MAX), printable])
    email = EmailField("Email", filters=[strip], validators=[
        InputRequired("Enter an email address."), Length(max=EMAIL_MAX)])
    first_name = StringField("First name", filters=[strip],
                             validators=[Optional(), Length(max=NAME_MAX), printable])
    last_name = StringField("Last name", filters=[strip],
                            validators=[Optional(), Length(max=NAME_MAX), printable])
    password = PasswordField("Password", validators=[
        InputRequired("Enter a password."), Length(PASSWORD_MIN, PASSWORD_MAX)],
        render_kw={"autocomplete": "new-password"})
    super_admin = BooleanField("Super admin")
    create = SubmitField("Add user")


class ActionForm(FlaskForm):
    """The CSRF token of the per-user action buttons."""


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False

    user = StringField("User (login name)", filters=[strip],
                       validators=[Optional(), Length(max=LOGIN_NAME_MAX), printable])
    kind = StringField("Kind", filters=[strip], validators=[Optional(), Length(max=50),
                                                             printable])
