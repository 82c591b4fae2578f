"""Development only: a local SMTP catcher and a page showing what it caught."""

from flask import Blueprint

bp = Blueprint("dev_mail", __name__, url_prefix="/dev/mail")

from . import views  # noqa: E402,F401  (registers the routes on bp)
