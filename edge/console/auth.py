"""Who may read the console: a token (Bearer header, or ?token= once, then a cookie) and/or HTTP
Basic auth (user + password). Required off loopback (edge/console/config.py); either configured
method is accepted. Secrets are compared in constant time and never written into a page."""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse

TOKEN_COOKIE = "steel_inspect_console"
REALM = "steel-inspect console"


def same(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode(), expected.encode())


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, password) of an `Authorization: Basic ...` header, or None when it is not one."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


class ConsoleAuth(BaseHTTPMiddleware):
    def __init__(self, app, token: str | None = None,
                 basic: tuple[str, str] | None = None) -> None:
        super().__init__(app)
        if not (token or basic):
            raise ValueError("ConsoleAuth needs a token or basic credentials")
        self._token = token
        self._basic = basic

    async def dispatch(self, request: Request, call_next):
        given = request.query_params.get("token")
        if self._token and given is not None and same(given, self._token):
            url = request.url.remove_query_params("token")
            response = RedirectResponse(str(url), status_code=303)
            response.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="strict")
            return response
        if self._allowed(request):
            return await call_next(request)
        challenges = [f'Basic realm="{REALM}", charset="UTF-8"'] if self._basic else []
        challenges += ["Bearer"] if self._token else []
        return JSONResponse({"error": "authentication required"}, status_code=401,
                            headers={"WWW-Authenticate": ", ".join(challenges)})

    def _allowed(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if self._token:
            bearer = header[7:] if header.lower().startswith("bearer ") else None
            presented = bearer if bearer is not None else request.cookies.get(TOKEN_COOKIE, "")
            if same(presented, self._token):
                return True
        if self._basic:
            credentials = basic_credentials(header)
            if credentials is not None:
                user_ok = same(credentials[0], self._basic[0])
                password_ok = same(credentials[1], self._basic[1])
                return user_ok & password_ok  # both compared, whichever is wrong
        return False
