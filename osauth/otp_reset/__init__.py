"""Reset OTP Secret Code: the request page and the emailed link's landing page."""

from flask import Blueprint

bp = Blueprint("otp_reset", __name__, url_prefix="/otp-reset")

from . import views  # noqa: E402,F401  (registers the routes on bp)
