from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SubmitField

from ..forms import login_name_field


class RequestLinkForm(FlaskForm):
    login_name = login_name_field()
    submit = SubmitField("Email Reset OTP Secret Code link")


class ConfirmResetForm(FlaskForm):
    submit = SubmitField("Reset my OTP secret code")
