"""Connection settings, resolved once: an argument (the command line's flag), then environment
variable, then default.

Nothing here reads the environment at import time; `resolve_settings` is given the environment.
Credentials are one protocol (`credentials.Credentials`); their secrets never show in a repr.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .credentials import (
    ApiKey,
    ClientSecret,
    Credentials,
    PrivateKeyJwt,
    Secret,
    credentials_from,
)
from .errors import ConfigError

__all__ = [
    "ApiKey",
    "ClientSecret",
    "Credentials",
    "PrivateKeyJwt",
    "Secret",
    "Settings",
    "is_loopback",
    "resolve_settings",
]

DEFAULT_API_URL = "https://api.chekt.com"


@dataclass(frozen=True)
class Settings:
    api_url: str
    token_url: str
    credentials: Credentials
    dealer_id: int | None = None
    # A PEM file of the certificate authorities to trust (--ca-bundle, CHEKT_CA_BUNDLE, else
    # SSL_CERT_FILE); None: the certifi bundle, as httpx's default.
    ca_bundle: str | None = None
    # What was corrected while resolving, for the command line to print.
    notes: tuple[str, ...] = ()

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context every connection uses: the CA bundle if one is set. Settings with no
        https URL (a sandbox on this machine) make no TLS connection: their context loads no
        bundle (about 20 ms of CPU) and trusts no authority, still verifying, so a TLS
        connection made with it by mistake would be refused."""
        if not any(urlsplit(url).scheme == "https" for url in (self.api_url, self.token_url)):
            return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.ca_bundle:
            return ssl.create_default_context(cafile=self.ca_bundle)
        if os.environ.get("SSL_CERT_DIR"):  # as httpx's default honours it
            return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
        import certifi

        return ssl.create_default_context(cafile=certifi.where())

    def required_dealer(self) -> int:
        """The dealer id, for work that needs one (an export, a clone): ConfigError when none
        is set."""
        if self.dealer_id is None:
            raise ConfigError("no dealer id: set CHEKT_DEALER_ID", setting="dealer")
        return self.dealer_id

    @property
    def assertion_audience(self) -> str:
        """The JWT `aud`: the token server's origin with a trailing slash."""
        parts = urlsplit(self.token_url)
        return f"{parts.scheme}://{parts.netloc}/"

    @property
    def cleartext_urls(self) -> list[str]:
        """The API and token URLs that are plain http:// to another machine: allowed only when
        asked (`allow_insecure_http`), and warned about on every run."""
        return [url for url in dict.fromkeys((self.api_url, self.token_url)) if _cleartext(url)]

    @property
    def auth_kind(self) -> str:
        return self.credentials.kind


# Each setting as messages name it: (what it is, the variable that sets it).
SETTINGS = {
    "api_url": ("the API URL", "CHEKT_API_URL"),
    "token_url": ("the token URL", "CHEKT_TOKEN_URL"),
    "dealer": ("the dealer id", "CHEKT_DEALER_ID"),
    "ca_bundle": ("the CA bundle", "CHEKT_CA_BUNDLE"),
}
# The API reference's paths start with /partner/v1; the API URL is the host before them.
API_PATH_SUFFIX = "/partner/v1"


def _clean_url(value: str, setting: str) -> str:
    value = value.strip().rstrip("/")
    what, variable = SETTINGS[setting]
    try:
        parts = urlsplit(value)
        port = parts.port  # ValueError past 65535, or not a number
    except ValueError:  # an unclosed IPv6 bracket, a bad port
        parts, port = None, None
    if (parts is None and "@" in value) or (
        parts is not None and ("@" in parts.netloc or parts.query or parts.fragment)
    ):
        # a password or token there would be printed wherever the URL is: never shown
        raise ConfigError(
            f"{what} ({variable}) must be the address alone, without a user name, password, "
            f"query (?...) or fragment (#...), which it holds: write it as https://host (with "
            f":port and a path if it has them); the client id and secret are settings of their "
            f"own",
            setting=setting,
        )
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise ConfigError(
            f"{what} must be an http(s) URL: a scheme, a host and perhaps a port (1 to 65535), "
            f"got {value!r} ({variable})",
            setting=setting,
        )
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


def _refuse_cleartext(url: str, setting: str) -> None:
    if _cleartext(url):
        host = urlsplit(url).hostname
        what, variable = SETTINGS[setting]
        raise ConfigError(
            f"{what} ({variable}): plain http:// to {host}, which is not this machine, would "
            f"send the client secret, tokens and contacts in clear; use https:// (or, on a "
            f"network you trust, allow it with CHEKT_ALLOW_INSECURE_HTTP=1)",
            setting="allow_insecure_http",
        )


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be 1 or 0 (true or false), got {value!r}", setting=name)


def resolve_settings(
    *,
    api_url: str | None = None,
    token_url: str | None = None,
    dealer: str | int | None = None,
    env: Mapping[str, str] | None = None,
    require_dealer: bool = True,
    allow_insecure_http: bool | None = None,
    ca_bundle: str | None = None,
) -> Settings:
    """Arguments win over `CHEKT_*` variables, which win over defaults. Errors name the value,
    the variable to set, and (`ConfigError.setting`) the setting, for the caller's own words.

    Plain http:// is refused for any host but this machine's loopback unless
    `allow_insecure_http` (or CHEKT_ALLOW_INSECURE_HTTP=1): the token request carries the
    client secret."""
    env = os.environ if env is None else env
    api = _clean_url(api_url or env.get("CHEKT_API_URL") or DEFAULT_API_URL, "api_url")
    notes: list[str] = []
    if api.lower().endswith(API_PATH_SUFFIX):
        corrected = api[: -len(API_PATH_SUFFIX)]
        notes.append(
            f"note: the API URL is the host without {API_PATH_SUFFIX} (the tool adds the "
            f"paths): using {corrected} instead of {api}"
        )
        api = corrected
    token = token_url or env.get("CHEKT_TOKEN_URL") or f"{api}/oauth/token"
    token = _clean_url(token, "token_url")
    if allow_insecure_http is None:
        allow_insecure_http = _flag(env, "CHEKT_ALLOW_INSECURE_HTTP")
    if not allow_insecure_http:
        _refuse_cleartext(api, "api_url")
        _refuse_cleartext(token, "token_url")
    return Settings(
        api_url=api,
        token_url=token,
        credentials=credentials_from(env),
        dealer_id=_dealer(
            dealer if dealer is not None else env.get("CHEKT_DEALER_ID"), require_dealer
        ),
        ca_bundle=_ca_bundle(ca_bundle, env),
        notes=tuple(notes),
    )


def _ca_bundle(flag: str | None, env: Mapping[str, str]) -> str | None:
    """--ca-bundle, else CHEKT_CA_BUNDLE, else SSL_CERT_FILE: a PEM file that must exist."""
    for value, name in (
        (flag, "--ca-bundle"),
        (env.get("CHEKT_CA_BUNDLE"), "CHEKT_CA_BUNDLE"),
        (env.get("SSL_CERT_FILE"), "SSL_CERT_FILE"),
    ):
        if value and value.strip():
            path = value.strip()
            if not os.path.isfile(path):
                raise ConfigError(
                    f"{name} {path}: no such file (it must be a PEM file of the certificate "
                    f"authorities to trust)",
                    setting="ca_bundle",
                )
            if not _loads_as_certificates(path):
                raise ConfigError(
                    f"{name} {path}: not a PEM file of certificates", setting="ca_bundle"
                )
            return path
    return None


# The CA bundles found good, as they were then (path, inode, size, modification time): a process
# that resolves settings many times (`serve`, the tests) reads an unchanged bundle once.
_GOOD_BUNDLES: set[tuple[str, int, int, int]] = set()


def _loads_as_certificates(path: str) -> bool:
    try:
        stat = os.stat(path)
        seen = (path, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if seen not in _GOOD_BUNDLES:
            ssl.create_default_context(cafile=path)
            _GOOD_BUNDLES.add(seen)
    except (ssl.SSLError, OSError, ValueError):
        return False
    return True


def _dealer(value: str | int | None, required: bool) -> int | None:
    if value is None or str(value).strip() == "":
        if required:
            raise ConfigError(
                "no dealer id: set CHEKT_DEALER_ID (or give a dealer_id column in the roster)",
                setting="dealer",
            )
        return None
    text = str(value).strip()
    # ASCII digits, at most 18 of them, as a roster's dealer_id cell (the plan reads the sites
    # of such dealers only: a longer id's rows were left out without a word); str.isdigit
    # takes ² and ١, which int() refuses or reads
    if re.fullmatch("[0-9]{1,18}", text) is None:
        raise ConfigError(
            f"the dealer id must be a number of at most 18 digits (0-9), got {text!r} "
            f"(CHEKT_DEALER_ID)",
            setting="dealer",
        )
    return int(text)
