from __future__ import annotations

from flask import current_app, render_template

from ..extensions import limiter
from ..services.otp_reset import request_otp_reset, reset_otp_secret
from ..services.tokens import TokenExpired, TokenInvalid, TokenUsed, check_reset_token
from ..web import client_ip
from . import bp
from .forms import ConfirmResetForm, RequestLinkForm

SENT = ("If an account with that login name exists, a link to reset its OTP secret code has "
        "been sent to its registered email address.")
LINK_PROBLEMS = {
    TokenExpired: ("This link has expired.", 410),
    TokenUsed: ("This link has been used already.", 410),
    TokenInvalid: ("This link is not valid. It may have been replaced by a newer one.", 404),
}


def _link_rate_limit() -> str:
    return current_app.config["RESET_LINK_RATE_LIMIT"]


@bp.route("", methods=["GET", "POST"])
def request_link():
    form = RequestLinkForm()
    if form.is_submitted():
        if not form.validate():
            return render_template("otp_reset/request.html", form=form), 400
        request_otp_reset(form.login_name.data, ip=client_ip())
        return render_template("otp_reset/request.html", form=RequestLinkForm(formdata=None),
                               sent=SENT)
    return render_template("otp_reset/request.html", form=form)


def _bad_link(error: Exception):
    problem, status = LINK_PROBLEMS[type(error)]
    return render_template("otp_reset/bad_link.html", problem=problem), status


@bp.route("/<token>", methods=["GET", "POST"])
@limiter.limit(_link_rate_limit)
def confirm(token: str):
    """GET only shows the button: mail scanners open links, a person presses buttons."""
    form = ConfirmResetForm()
    try:
        if form.is_submitted():
            if not form.validate():
                return render_template("otp_reset/confirm.html", form=form), 400
            user = reset_otp_secret(token, ip=client_ip())
            return render_template("otp_reset/done.html", user=user)
        check_reset_token(token, ip=client_ip())
    except (TokenExpired, TokenUsed, TokenInvalid) as error:
        return _bad_link(error)
    return render_template("otp_reset/confirm.html", form=form)
