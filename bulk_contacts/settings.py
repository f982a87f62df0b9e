"""Connection settings, resolved once: flag, then environment variable, then default.

Nothing here reads the environment at import time; `resolve_settings` is given the environment.
Secrets are wrapped in `Secret`, whose repr and str never show the value.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError

DEFAULT_API_URL = "https://api.chekt.com"


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


@dataclass(frozen=True)
class ClientSecret:
    client_id: str
    secret: Secret


@dataclass(frozen=True)
class PrivateKeyJwt:
    """A signed JWT assertion (private_key_jwt); `audience` is the optional API audience."""

    client_id: str
    private_key: Secret  # PEM text
    key_id: str | None = None
    audience: str | None = None


@dataclass(frozen=True)
class ApiKey:
    key: Secret


Credentials = ClientSecret | PrivateKeyJwt | ApiKey


@dataclass(frozen=True)
class Settings:
    api_url: str
    token_url: str
    credentials: Credentials
    dealer_id: int | None = None

    @property
    def assertion_audience(self) -> str:
        """The JWT `aud`: the token server's origin with a trailing slash."""
        parts = urlsplit(self.token_url)
        return f"{parts.scheme}://{parts.netloc}/"

    @property
    def cleartext_urls(self) -> list[str]:
        """The API and token URLs that are plain http:// to another machine: allowed only with
        --allow-insecure-http, and warned about on every run."""
        return [url for url in dict.fromkeys((self.api_url, self.token_url)) if _cleartext(url)]

    @property
    def auth_kind(self) -> str:
        return {ClientSecret: "client secret", PrivateKeyJwt: "signed JWT", ApiKey: "API key"}[
            type(self.credentials)
        ]


def _clean_url(value: str, name: str) -> str:
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
    return value


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (also written as an IPv4-mapped address) or the name localhost: traffic
    that never leaves this machine."""
    host = host.rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def _cleartext(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and not is_loopback(parts.hostname or "")


def _refuse_cleartext(url: str, name: str) -> None:
    if _cleartext(url):
        host = urlsplit(url).hostname
        raise ConfigError(
            f"{name}: plain http:// to {host}, which is not this machine, would send the client "
            f"secret, tokens and contacts in clear; use https:// (or, on a network you "
            f"trust, pass --allow-insecure-http or set CHEKT_ALLOW_INSECURE_HTTP=1)"
        )


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be 1 or 0 (true or false), got {value!r}")


def resolve_settings(
    *,
    api_url: str | None = None,
    token_url: str | None = None,
    dealer: str | int | None = None,
    env: Mapping[str, str] | None = None,
    require_dealer: bool = True,
    allow_insecure_http: bool | None = None,
) -> Settings:
    """Flags win over `CHEKT_*` variables, which win over defaults. Errors name what to set.

    Plain http:// is refused for any host but this machine's loopback unless
    `allow_insecure_http` (or CHEKT_ALLOW_INSECURE_HTTP=1): the token request carries the
    client secret."""
    env = os.environ if env is None else env
    api = _clean_url(api_url or env.get("CHEKT_API_URL") or DEFAULT_API_URL, "--api-url")
    token = token_url or env.get("CHEKT_TOKEN_URL") or f"{api}/oauth/token"
    token = _clean_url(token, "--token-url / CHEKT_TOKEN_URL")
    if allow_insecure_http is None:
        allow_insecure_http = _flag(env, "CHEKT_ALLOW_INSECURE_HTTP")
    if not allow_insecure_http:
        _refuse_cleartext(api, "--api-url / CHEKT_API_URL")
        _refuse_cleartext(token, "--token-url / CHEKT_TOKEN_URL")
    return Settings(
        api_url=api,
        token_url=token,
        credentials=_credentials(env),
        dealer_id=_dealer(
            dealer if dealer is not None else env.get("CHEKT_DEALER_ID"), require_dealer
        ),
    )


def _dealer(value: str | int | None, required: bool) -> int | None:
    if value is None or str(value).strip() == "":
        if required:
            raise ConfigError(
                "no dealer id: pass --dealer or set CHEKT_DEALER_ID "
                "(or give a dealer_id column in the roster)"
            )
        return None
    text = str(value).strip()
    if not text.isdigit():
        raise ConfigError(f"dealer id must be a number, got {text!r} (--dealer / CHEKT_DEALER_ID)")
    return int(text)


def _credentials(env: Mapping[str, str]) -> Credentials:
    api_key = env.get("CHEKT_API_KEY", "").strip()
    if api_key:
        return ApiKey(Secret(api_key))
    client_id = env.get("CHEKT_CLIENT_ID", "").strip()
    if not client_id:
        raise ConfigError(
            "no credentials: set CHEKT_CLIENT_ID with CHEKT_CLIENT_SECRET or "
            "CHEKT_PRIVATE_KEY_FILE, or set CHEKT_API_KEY"
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
            "CHEKT_CLIENT_ID is set but neither CHEKT_CLIENT_SECRET nor CHEKT_PRIVATE_KEY_FILE is"
        )
    return ClientSecret(client_id, Secret(secret))


def _read_private_key(path: Path) -> str:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        text = path.read_text()
        load_pem_private_key(text.encode(), password=None)
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(
            f"CHEKT_PRIVATE_KEY_FILE {path}: cannot be read ({error.__class__.__name__})"
        ) from None
    except (ValueError, TypeError):
        raise ConfigError(
            f"CHEKT_PRIVATE_KEY_FILE {path}: not an unencrypted PEM private key"
        ) from None
    return text
