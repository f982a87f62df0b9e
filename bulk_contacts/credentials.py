"""How the tool proves who it is to CHeKT: one protocol, three kinds of credentials.

Each kind knows what it sends: a client secret and a signed JWT assertion are exchanged for a
bearer token at the token URL (`token_request`), an API key is the bearer token itself (`bearer`).
The rest of the tool (settings, the token source, the client) asks the credentials, never their
type. Secrets are wrapped in `Secret`, whose repr and str never show the value.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import jwt

from .errors import ConfigError

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 300  # seconds, as in CHeKT's own sample


class Secret:
    """A value that must never be printed, logged or written."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class Credentials(Protocol):
    """What every kind of credentials answers."""

    @property
    def kind(self) -> str:
        """How they are named to the user: "client secret", "signed JWT", "API key"."""
        ...

    @property
    def check_hint(self) -> str:
        """What to check when CHeKT refuses them (the variables that set them)."""
        ...

    @property
    def bearer(self) -> str | None:
        """The bearer token itself (an API key), or None when one is fetched."""
        ...

    def token_request(self, audience: str) -> dict[str, str]:
        """The token request's form; `audience` is the JWT `aud` (the token server's origin)."""
        ...


@dataclass(frozen=True)
class ClientSecret:
    client_id: str
    secret: Secret

    kind = "client secret"
    check_hint = "CHEKT_CLIENT_ID and CHEKT_CLIENT_SECRET"
    bearer = None

    def token_request(self, audience: str) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.secret.reveal(),
        }


@dataclass(frozen=True)
class PrivateKeyJwt:
    """A signed JWT assertion (private_key_jwt); `audience` is the optional API audience."""

    client_id: str
    private_key: Secret  # PEM text
    key_id: str | None = None
    audience: str | None = None

    kind = "signed JWT"
    check_hint = "CHEKT_CLIENT_ID and CHEKT_PRIVATE_KEY_FILE"
    bearer = None

    def token_request(self, audience: str) -> dict[str, str]:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": self.assertion(audience),
        }
        if self.audience:
            form["audience"] = self.audience
        return form

    def assertion(self, audience: str) -> str:
        """RS256; `iss` = `sub` = the client id, a fresh `jti`, five minutes to live."""
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        }
        pem = self.private_key.reveal()
        kid = self.key_id or key_thumbprint(pem)
        return jwt.encode(claims, pem, algorithm="RS256", headers={"kid": kid})


@dataclass(frozen=True)
class ApiKey:
    key: Secret

    kind = "API key"
    check_hint = "CHEKT_API_KEY"

    @property
    def bearer(self) -> str:
        return self.key.reveal()

    def token_request(self, audience: str) -> dict[str, str]:
        raise AssertionError("an API key is the bearer token: nothing is requested")


def key_thumbprint(private_pem: str) -> str:
    """RFC 7638 thumbprint of the public key: a stable `kid` when none is configured."""
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(private_pem.encode(), None)
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError("the private key is not an RSA key (RS256 needs one)")
    numbers = key.public_key().public_numbers()

    def b64(n: int) -> str:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    jwk = json.dumps(
        {"e": b64(numbers.e), "kty": "RSA", "n": b64(numbers.n)}, separators=(",", ":")
    )
    return base64.urlsafe_b64encode(hashlib.sha256(jwk.encode()).digest()).rstrip(b"=").decode()


def credentials_from(env: Mapping[str, str]) -> Credentials:
    """The credentials the environment sets: CHEKT_API_KEY, else CHEKT_CLIENT_ID with
    CHEKT_PRIVATE_KEY_FILE or CHEKT_CLIENT_SECRET. Errors name the variables to set."""
    api_key = env.get("CHEKT_API_KEY", "").strip()
    if api_key:
        return ApiKey(Secret(api_key))
    client_id = env.get("CHEKT_CLIENT_ID", "").strip()
    if not client_id:
        raise ConfigError(
            "no credentials: set CHEKT_CLIENT_ID with CHEKT_CLIENT_SECRET or "
            "CHEKT_PRIVATE_KEY_FILE, or set CHEKT_API_KEY",
            setting="credentials",
        )
    key_file = env.get("CHEKT_PRIVATE_KEY_FILE", "").strip()
    if key_file:
        return PrivateKeyJwt(
            client_id=client_id,
            private_key=Secret(_read_private_key(Path(key_file))),
            key_id=env.get("CHEKT_KEY_ID", "").strip() or None,
            audience=env.get("CHEKT_AUDIENCE", "").strip() or None,
        )
    secret = env.get("CHEKT_CLIENT_SECRET", "")
    if not secret:
        raise ConfigError(
            "CHEKT_CLIENT_ID is set but neither CHEKT_CLIENT_SECRET nor CHEKT_PRIVATE_KEY_FILE is",
            setting="credentials",
        )
    return ClientSecret(client_id, Secret(secret))


def _read_private_key(path: Path) -> str:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        text = path.read_text()
        key = load_pem_private_key(text.encode(), password=None)
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(
            f"CHEKT_PRIVATE_KEY_FILE {path}: cannot be read ({error.__class__.__name__})",
            setting="credentials",
        ) from None
    except (ValueError, TypeError):
        raise ConfigError(
            f"CHEKT_PRIVATE_KEY_FILE {path}: not an unencrypted PEM private key",
            setting="credentials",
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError(
            f"CHEKT_PRIVATE_KEY_FILE {path}: not an RSA key (the assertion is signed RS256)",
            setting="credentials",
        )
    return text
