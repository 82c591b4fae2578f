"""QR codes of otpauth:// URIs, as PNG for an inline email image."""

from __future__ import annotations

import io
from urllib.parse import quote, urlencode

import qrcode


def provisioning_uri(secret: str, *, issuer: str, login_name: str, algorithm: str = "SHA1",
                     digits: int = 6, period: int = 30) -> str:
    """The Key Uri Format with every parameter spelled out (pyotp leaves defaults out)."""
    label = quote(f"{issuer}:{login_name}", safe=":@")
    query = urlencode({"secret": secret, "issuer": issuer, "algorithm": algorithm,
                       "digits": digits, "period": period}, quote_via=quote)
    return f"otpauth://totp/{label}?{query}"


def qr_png(data: str) -> bytes:
    image = qrcode.make(data, box_size=6, border=4)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
