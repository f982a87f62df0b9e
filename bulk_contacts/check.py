"""Can I work? The connection checked step by step: the API's host found (DNS), reached (TCP),
its certificate trusted (TLS), a token granted, the dealer's site list read. Each step is timed;
the first failure stops the check and says what is likely wrong and how to fix it.

The site list's answer also tells the rate limit (its `X-RateLimit-*` headers) and how far this
machine's clock is from the server's (its `Date` header: signed assertions and token lifetimes
depend on it).
"""

from __future__ import annotations

import email.utils
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .client import ChektClient
from .diagnose import PROXY_HINT, cause_of, transport_message
from .errors import ApiError, BulkContactsError, NotFound, PermissionDenied
from .settings import Settings

CONNECT_TIMEOUT = 3.0  # seconds for each of DNS, TCP and TLS
CLOCK_WARNING = 60.0  # seconds of offset worth a warning


@dataclass(frozen=True)
class CheckStep:
    name: str
    ok: bool
    seconds: float
    detail: str
    fix: str = ""  # for a failed step: what to do


@dataclass
class CheckReport:
    steps: list[CheckStep] = field(default_factory=list)
    sites: int | None = None
    rate_limit: str | None = None  # "120 per minute, 119 left" as the headers tell
    clock_offset: float | None = None  # seconds the server's clock is ahead of ours

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    @property
    def failed(self) -> CheckStep | None:
        return next((step for step in self.steps if not step.ok), None)


class StepFailed(Exception):
    def __init__(self, detail: str, fix: str = "") -> None:
        super().__init__(detail)
        self.detail, self.fix = detail, fix


def run_check(settings: Settings, client: ChektClient | None = None) -> CheckReport:
    """Every step, in order, until one fails. `client` (made from `settings` when not given)
    does the token and site-list steps."""
    report = CheckReport()
    own = client is None
    client = client or ChektClient(settings, concurrency=1)
    try:
        _run(settings, client, report)
    finally:
        if own:
            client.close()
    return report


def _run(settings: Settings, client: ChektClient, report: CheckReport) -> None:
    url = urlsplit(settings.api_url)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    proxy = _proxy_for(settings.api_url)
    state: dict[str, object] = {}

    def step(name: str, action: Callable[[], str]) -> bool:
        started = time.perf_counter()
        try:
            detail = action()
        except StepFailed as failure:
            report.steps.append(
                CheckStep(name, False, time.perf_counter() - started, failure.detail, failure.fix)
            )
            return False
        except BulkContactsError as error:
            detail, fix = _explain(error, settings)
            report.steps.append(CheckStep(name, False, time.perf_counter() - started, detail, fix))
            return False
        report.steps.append(CheckStep(name, True, time.perf_counter() - started, detail))
        return True

    if proxy:
        target = urlsplit(proxy)
        host, port = target.hostname or "", target.port or 8080

    def dns() -> str:
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as error:
            raise StepFailed(
                f"{host} was not found ({error})",
                transport_message("dns", proxy or settings.api_url).split(": ", 1)[1],
            ) from None
        addresses = list(dict.fromkeys(item[4][0] for item in found))
        state["address"] = found[0][4]
        via = f"the proxy {proxy}: " if proxy else ""
        return f"{via}{host} is {', '.join(str(a) for a in addresses[:3])}"

    def tcp() -> str:
        try:
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
                pass
        except OSError as error:
            cause = cause_of(error)
            if cause == "refused":
                message = transport_message("refused", proxy or settings.api_url)
                what, fix = message.split(": ", 1) if ": " in message else (message, "")
                raise StepFailed(what, fix) from None
            raise StepFailed(
                f"no TCP connection to {host}:{port} within {CONNECT_TIMEOUT:.0f} s ({error})",
                "a firewall may drop it, or a proxy is needed: " + PROXY_HINT,
            ) from None
        return f"connected to {host}:{port}"

    def tls() -> str:
        context = settings.ssl_context()
        try:
            with (
                socket.create_connection((host, port), timeout=CONNECT_TIMEOUT) as raw,
                context.wrap_socket(raw, server_hostname=host) as secure,
            ):
                version = secure.version()
                cert = secure.getpeercert() or {}
        except (ssl.SSLError, ssl.CertificateError, OSError) as error:
            message = transport_message("tls", settings.api_url, error)
            what, fix = message.split(": ", 1)
            raise StepFailed(what, fix) from None
        expires = cert.get("notAfter", "")
        bundle = f", trusting {settings.ca_bundle}" if settings.ca_bundle else ""
        return f"{version}, certificate valid until {expires}{bundle}"

    def token() -> str:
        client.tokens.current()
        return f"granted ({settings.auth_kind}, {settings.token_url})"

    def sites() -> str:
        dealer = settings.dealer_id
        if dealer is None:
            raise StepFailed(
                "no dealer id",
                "give one with --dealer, CHEKT_DEALER_ID, or the profile's dealer",
            )
        before = time.time()
        found, headers = client.list_sites_with_headers(dealer)
        after = time.time()
        report.sites = len(found)
        report.rate_limit = _rate_limit(headers)
        report.clock_offset = _clock_offset(headers.get("date"), (before + after) / 2)
        return f"dealer {dealer}: {len(found)} site{'' if len(found) == 1 else 's'}"

    if not step("DNS", dns) or not step("TCP", tcp):
        return
    if url.scheme == "https" and not proxy and not step("TLS", tls):
        return
    if step("token", token):
        step("site list", sites)


def _proxy_for(url: str) -> str | None:
    """The proxy httpx would use for `url` (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # untyped
    if not proxies or bypass(parts.hostname or "", proxies):
        return None
    return proxies.get(parts.scheme) or proxies.get("all")


def _rate_limit(headers: dict[str, str]) -> str | None:
    limit = headers.get("x-ratelimit-limit")
    if not limit:
        return None
    remaining = headers.get("x-ratelimit-remaining")
    left = f", {remaining} left now" if remaining else ""
    return f"{limit} requests per window{left} (X-RateLimit-Limit)"


def _clock_offset(date: str | None, local: float) -> float | None:
    if not date:
        return None
    try:
        server = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return None
    if server.tzinfo is None:
        return None
    return server.timestamp() - local


def _explain(error: BulkContactsError, settings: Settings) -> tuple[str, str]:
    """A failed step's error as (what happened, the likely fix)."""
    text = error.message if isinstance(error, ApiError) else str(error)
    dealer = settings.dealer_id
    if (
        isinstance(error, (PermissionDenied, NotFound))
        and error.path
        and "/partner/" in error.path
        and dealer is not None
    ):
        return (
            f"dealer {dealer} is not reachable with these credentials "
            f"(HTTP {error.status}: {text})",
            "check the dealer id (--dealer, CHEKT_DEALER_ID or the profile's dealer)",
        )
    if isinstance(error, ApiError) and error.code != "html_page" and "refused the" in text:
        return text.split("; check", 1)[0], (
            f"check {settings.credentials.check_hint}, or store the secret again with "
            f"bulk-contacts login --profile NAME"
        )
    if ": " in text and getattr(error, "cause", "other") != "other":
        what, fix = text.split(": ", 1)
        return what, fix
    return text, ""


def clock_note(offset: float | None) -> str:
    if offset is None:
        return "clock offset: unknown (no Date header)"
    words = f"clock offset: {offset:+.0f} s (the server's clock minus this machine's)"
    if abs(offset) >= CLOCK_WARNING:
        words += ": set this machine's clock (signed assertions and tokens depend on it)"
    return words
