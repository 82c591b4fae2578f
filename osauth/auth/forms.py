from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField, SubmitField
from wtforms.validators import InputRequired, Length, Optional, Regexp

from ..forms import login_name_field, remove_spaces
from ..services.users import PASSWORD_MAX


class LoginForm(FlaskForm):
    login_name = login_name_field()
    password = PasswordField(
        "Password",
        validators=[InputRequired("Enter your password."),
                    Length(max=PASSWORD_MAX, message="The password is too long.")],
        render_kw={"autocomplete": "current-password"},
    )
    otp = StringField(
        "OTP code", filters=[remove_spaces],
        validators=[Optional(), Regexp(r"^[0-9]{6,8}$", message="The OTP code is six digits.")],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric",
                   "pattern": "[0-9 ]*", "maxlength": 9},
    )
    submit = SubmitField("Sign in")


class SignOutForm(FlaskForm):
    submit = SubmitField("Sign out")


class NotificationsForm(FlaskForm):
    email_notifications = BooleanField("Email notifications")
    save = SubmitField("Save")
