"""Getting and keeping a bearer token: client secret, signed JWT assertion, or a static API key.

One token is shared by every worker. It is refreshed shortly before it expires, and once when a
request answers 401; however many requests are in flight, only one refresh runs at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from .errors import AuthError
from .settings import Settings


class TokenSource:
    """Hands out the current bearer token; `fetch` does the one HTTP call to the token URL."""

    def __init__(
        self,
        settings: Settings,
        fetch: Callable[[dict[str, str]], tuple[str, float]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings, self.fetch, self.clock = settings, fetch, clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def current(self) -> str:
        bearer = self.settings.credentials.bearer
        if bearer is not None:
            return bearer
        with self._lock:
            if self._token is None or self.clock() >= self._expires:
                self._refresh()
            assert self._token is not None
            return self._token

    def rejected(self, token: str) -> None:
        """A request with `token` got 401: drop it, unless another worker already replaced it."""
        with self._lock:
            if self._token == token:
                self._token = None

    def _refresh(self) -> None:
        token, lifetime = self.fetch(self._form())
        # Renew a little before the server would refuse it: a minute, or a tenth of short TTLs.
        margin = min(60.0, lifetime / 10)
        self._token, self._expires = token, self.clock() + max(lifetime - margin, 0.0)

    def _form(self) -> dict[str, str]:
        return self.settings.credentials.token_request(self.settings.assertion_audience)


def read_token_response(response: httpx.Response, token_url: str) -> tuple[str, float]:
    """The access token and its lifetime from a token endpoint's 200 answer."""
    try:
        body = response.json()
        token = body["access_token"]
        lifetime = float(body.get("expires_in") or 3600)
    except (ValueError, KeyError, TypeError):
        raise AuthError(
            f"the token endpoint {token_url} answered 200 without an access_token",
            status=response.status_code,
        ) from None
    if not isinstance(token, str) or not token:
        raise AuthError(f"the token endpoint {token_url} gave an empty access_token")
    return token, lifetime
