"""Getting and keeping a bearer token: client secret, signed JWT assertion, or a static API key.

One token is shared by every worker. It is refreshed shortly before it expires, and once when a
request answers 401; however many requests are in flight, only one refresh runs at a time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable

import httpx
import jwt

from .errors import AuthError
from .settings import ApiKey, ClientSecret, PrivateKeyJwt, Settings

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 300  # seconds, as in CHeKT's own sample


def key_thumbprint(private_pem: str) -> str:
    """RFC 7638 thumbprint of the public key: a stable `kid` when none is configured."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    numbers = load_pem_private_key(private_pem.encode(), None).public_key().public_numbers()  # type: ignore[union-attr]

    def b64(n: int) -> str:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    jwk = json.dumps(
        {"e": b64(numbers.e), "kty": "RSA", "n": b64(numbers.n)}, separators=(",", ":")
    )
    return base64.urlsafe_b64encode(hashlib.sha256(jwk.encode()).digest()).rstrip(b"=").decode()


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
        creds = self.settings.credentials
        if isinstance(creds, ApiKey):
            return creds.key.reveal()
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
        creds = self.settings.credentials
        if isinstance(creds, ClientSecret):
            return {
                "grant_type": "client_credentials",
                "client_id": creds.client_id,
                "client_secret": creds.secret.reveal(),
            }
        assert isinstance(creds, PrivateKeyJwt)
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": self._assertion(creds),
        }
        if creds.audience:
            form["audience"] = creds.audience
        return form

    def _assertion(self, creds: PrivateKeyJwt) -> str:
        now = int(time.time())
        claims = {
            "iss": creds.client_id,
            "sub": creds.client_id,
            "aud": self.settings.assertion_audience,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        }
        pem = creds.private_key.reveal()
        kid = creds.key_id or key_thumbprint(pem)
        return jwt.encode(claims, pem, algorithm="RS256", headers={"kid": kid})


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
