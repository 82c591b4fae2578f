from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField
from wtforms.validators import InputRequired, Length

from ..forms import printable, strip
from ..models import LOGIN_NAME_MAX


class RequestLinkForm(FlaskForm):
    login_name = StringField(
        "Login name", filters=[strip],
        validators=[InputRequired("Enter your login name."),
                    Length(max=LOGIN_NAME_MAX, message="The login name is too long."), printable],
        render_kw={"autocomplete": "username", "autofocus": True},
    )
    submit = SubmitField("Email Reset OTP Secret Code link")


class ConfirmResetForm(FlaskForm):
    submit = SubmitField("Reset my OTP secret code")
