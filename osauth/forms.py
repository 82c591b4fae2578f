"""Field helpers shared by every blueprint's forms."""

from __future__ import annotations

from wtforms import StringField, ValidationError
from wtforms.validators import InputRequired, Length

from .models import LOGIN_NAME_MAX
from .services.text import has_control_characters


def strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


def remove_spaces(value: str | None) -> str | None:
    """Codes are often typed as '123 456'."""
    return "".join(value.split()) if isinstance(value, str) else value


def printable(form, field) -> None:
    if isinstance(field.data, str) and has_control_characters(field.data):
        raise ValidationError("This field contains characters that cannot be typed.")


def login_name_field() -> StringField:
    """The "Login name" field of the sign-in and reset pages."""
    return StringField(
        "Login name", filters=[strip],
        validators=[InputRequired("Enter your login name."),
                    Length(max=LOGIN_NAME_MAX, message="The login name is too long."), printable],
        render_kw={"autocomplete": "username", "autofocus": True},
    )
