"""The gate in front of every request: the interface can write to CHeKT, so only the person who
started it, in their own browser, may use it.

- The `Host` header must be `127.0.0.1:<port>` or `localhost:<port>`: a page on another site
  that rebinds its DNS name to 127.0.0.1 is refused (400).
- The printed URL carries a random token (as Jupyter's does). Opening it sets a session cookie
  (HttpOnly, SameSite=Strict) and redirects to the same page without the token; every other
  request needs that cookie (403 without it).
- Every request that changes state (not GET/HEAD) also needs the `X-CSRF-Token` header, which
  only the pages themselves carry (403 without it); a request whose `Origin` is another site is
  refused. No CORS headers are ever sent.
- Every answer forbids framing, caching and referrers, and its Content-Security-Policy lets a
  page run only the package's own scripts.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = {"GET", "HEAD"}
CSRF_HEADER = "x-csrf-token"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


@dataclass
class Session:
    """The secrets of one `serve`: the URL token, the session cookie's value, the CSRF token.
    `port` is set once the socket is bound."""

    port: int = 0
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    cookie_value: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def cookie_name(self) -> str:
        # Cookies ignore ports: one name per port keeps two servers' sessions apart.
        return f"bulk_contacts_{self.port}"

    @property
    def hosts(self) -> set[str]:
        return {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?token={self.token}"


class Gate:
    """ASGI middleware enforcing the rules above before the application sees a request."""

    def __init__(self, app: ASGIApp, session: Session) -> None:
        self.app, self.session = app, session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, send)
            return  # no websockets
        refusal = self.refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, _with_headers(send, SECURITY_HEADERS))

    def refusal(self, scope: Scope) -> ASGIApp | None:
        headers = Headers(scope=scope)
        session = self.session
        if headers.get("host", "") not in session.hosts:
            return _refuse(400, "bad Host header: open the URL that bulk-contacts serve printed")
        origin = headers.get("origin")
        if origin is not None and origin not in {f"http://{h}" for h in session.hosts}:
            return _refuse(403, "cross-origin request refused")
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        token = query.pop("token", None)
        if token is not None and secrets.compare_digest(token, session.token):
            return self._enter(scope, query)
        cookie = SimpleCookie(headers.get("cookie", "")).get(session.cookie_name)
        if cookie is None or not secrets.compare_digest(cookie.value, session.cookie_value):
            return _refuse(
                403,
                "no session: open the URL with the token that bulk-contacts serve printed",
            )
        if scope["method"] not in SAFE_METHODS and not secrets.compare_digest(
            headers.get(CSRF_HEADER, ""), session.csrf
        ):
            return _refuse(403, "missing or wrong X-CSRF-Token header")
        return None

    def _enter(self, scope: Scope, query: dict[str, str]) -> ASGIApp:
        """The token URL: set the session cookie, and go to the same page without the token
        (so it is not left in the address bar or the history)."""
        target = scope["path"] + (f"?{urlencode(query)}" if query else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            self.session.cookie_name,
            self.session.cookie_value,
            httponly=True,
            samesite="strict",
            path="/",
        )
        return response


def _refuse(status: int, message: str) -> ASGIApp:
    return PlainTextResponse(
        message + "\n", status_code=status, headers={"cache-control": "no-store"}
    )


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            names = {name for name, _ in message.get("headers", [])}
            message["headers"] = [
                *message.get("headers", []),
                *((name, value) for name, value in extra if name not in names),
            ]
        await send(message)

    return sending
