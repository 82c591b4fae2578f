"""What every response shares: security headers, error pages, the signed-in user."""

from __future__ import annotations

from flask import Flask, Response, abort, current_app, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from jinja2_fragments.flask import render_block
from werkzeug.exceptions import HTTPException

from .extensions import db, login_manager
from .models import User
from .services.settings import get_setting

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

ERROR_MESSAGES = {
    400: "The request could not be understood. Check what you typed and try again.",
    403: "You do not have permission to open this page.",
    404: "There is no page at this address.",
    405: "This page does not accept that kind of request.",
    413: "What you sent is too large.",
    429: "Too many attempts. Wait a while and try again.",
    500: "Something went wrong on our side. Try again later.",
}


def client_ip() -> str | None:
    return request.remote_addr


MAX_PAGE = 1_000_000


def page_number() -> int:
    """``?page=`` as a page number that every database can turn into an OFFSET."""
    page = request.args.get("page", 1, type=int)
    return max(1, min(page, MAX_PAGE))


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def render_page_or_block(template: str, block: str, **context) -> str:
    """HTMX asks for the block alone; anything else gets the whole page. One template."""
    if is_htmx():
        return render_block(template, block, **context)
    return render_template(template, **context)


def require_super_admin():
    """A before_request guard: anonymous visitors are sent to sign in, others get 403."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.is_super_admin:
        abort(403)
    return None


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    user_id, _, epoch = session_id.partition(":")
    if not (user_id.isdigit() and epoch.isdigit()):
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_epoch != int(epoch) or not user.active:
        return None
    return user


def set_security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if not current_app.config["DEVELOPMENT"]:
        # Production is served over https (TLS at the balancer): browsers must not try http.
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if response.mimetype == "text/html":
        # Pages of an auth service may show personal data and secrets: never cache them.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def render_error(error: HTTPException):
    code = error.code or 500
    message = ERROR_MESSAGES.get(code, error.description)
    if isinstance(error, CSRFError):
        message = ("The form was not sent from this site or has expired. "
                   "Reload the page and try again.")
    return render_template("errors/error.html", code=code, message=message), code


def init_app(app: Flask) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Sign in to open that page."
    login_manager.session_protection = "basic"
    app.after_request(set_security_headers)
    app.register_error_handler(HTTPException, render_error)

    @app.context_processor
    def inject_two_factor() -> dict:
        return {"two_factor_enabled": get_setting("authentication.two_factor_enabled")}
