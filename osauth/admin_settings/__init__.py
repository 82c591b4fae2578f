"""The super admins' dashboard: Settings (Authentication, Email), Users and the Audit log."""

from flask import Blueprint

bp = Blueprint("admin_settings", __name__, url_prefix="/settings")

from . import views  # noqa: E402,F401  (registers the routes on bp)
