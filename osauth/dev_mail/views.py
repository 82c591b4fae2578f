from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from flask import Response, abort, current_app, render_template, request

from . import bp

NAME = re.compile(r"^[0-9]{1,25}$")


def _folder() -> Path:
    return Path(current_app.config["DEV_MAIL_DIR"])


def _read(name: str) -> EmailMessage:
    path = _folder() / f"{name}.eml"
    if not NAME.match(name) or not path.is_file():
        abort(404)
    return message_from_bytes(path.read_bytes(), policy=policy.default)


@bp.before_request
def only_from_this_machine():
    # It shows everyone's mail, secrets included: never to another host.
    if request.remote_addr not in ("127.0.0.1", "::1"):
        abort(404)


@bp.get("")
def inbox():
    paths = sorted(_folder().glob("*.eml"), reverse=True)[:100] if _folder().is_dir() else []
    messages = [(p.stem, message_from_bytes(p.read_bytes(), policy=policy.default))
                for p in paths]
    return render_template("dev_mail/inbox.html", messages=messages)


@bp.get("/<name>")
def show(name: str):
    message = _read(name)
    images = [part["Content-ID"].strip("<>") for part in message.walk()
              if part.get_content_maintype() == "image" and part["Content-ID"]]
    text = message.get_body(preferencelist=("plain",))
    return render_template("dev_mail/message.html", name=name, message=message,
                           text=text.get_content() if text else "", images=images)


@bp.get("/<name>/<cid>.png")
def image(name: str, cid: str):
    for part in _read(name).walk():
        if part["Content-ID"] == f"<{cid}>" and part.get_content_type() == "image/png":
            return Response(part.get_content(), mimetype="image/png")
    abort(404)
