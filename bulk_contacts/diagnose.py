"""What a failed connection means, in words that point to the fix.

A connection that fails before the server ever answered is not a blip to retry for half a
minute: nothing listening, a name that does not resolve and a certificate that is not trusted
stay so. Each has its own message naming the URL and what to do.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

from .settings import is_loopback

SANDBOX_COMMAND = "bulk-contacts sandbox --seed sample_data/sandbox-seed.json"
PROXY_HINT = (
    "HTTPS_PROXY (and HTTP_PROXY, NO_PROXY) are honoured: check them, or unset them to go direct"
)


def cause_of(error: BaseException) -> str:
    """'refused', 'dns', 'tls', 'timeout' or 'other': what the OS or ssl said under httpx's
    and httpcore's wrappers."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return "tls"
        if isinstance(current, ssl.SSLError):
            return "tls"
        if isinstance(current, socket.gaierror):
            return "dns"
        if isinstance(current, ConnectionRefusedError):
            return "refused"
        if isinstance(current, (TimeoutError, socket.timeout)):
            return "timeout"
        current = current.__cause__ or current.__context__
    text = str(error).lower()
    # httpcore re-raises some OS errors as its own with the message only
    if "certificate verify failed" in text or ("ssl" in text and "certificate" in text):
        return "tls"
    if "name or service not known" in text or "nodename nor servname" in text:
        return "dns"
    if "temporary failure in name resolution" in text or "getaddrinfo failed" in text:
        return "dns"
    if "connection refused" in text or "actively refused" in text or "errno 111" in text:
        return "refused"
    return "other"


def transport_message(cause: str, url: str, error: BaseException | str = "") -> str:
    """The one line for a connection that failed with `cause` at `url`."""
    parts = urlsplit(url)
    host = parts.hostname or url
    origin = f"{parts.scheme}://{parts.netloc}"
    if cause == "refused":
        message = f"nothing is listening at {origin} (connection refused)"
        if is_loopback(host):
            return f"{message}: is the sandbox running? start it with: {SANDBOX_COMMAND}"
        return f"{message}: check the API URL (--api-url, CHEKT_API_URL) and its port"
    if cause == "dns":
        return (
            f"the host {host} was not found (DNS lookup failed): check the API URL "
            f"(--api-url, CHEKT_API_URL) and this machine's network; {PROXY_HINT}"
        )
    if cause == "tls":
        reason = _tls_reason(error)
        return (
            f"the TLS certificate of {host} could not be verified ({reason}): a proxy or "
            f"firewall that inspects HTTPS presents its own certificate; give its CA "
            f"certificate (PEM) with --ca-bundle FILE or CHEKT_CA_BUNDLE (SSL_CERT_FILE works "
            f"too)"
        )
    if cause == "timeout":
        return (
            f"{origin} did not answer in time (timeout): a firewall dropping the connection, or "
            f"a proxy needed? {PROXY_HINT}"
        )
    return f"no connection to {origin} ({error or 'connection failed'})"


def _tls_reason(error: BaseException | str) -> str:
    current: BaseException | None = error if isinstance(error, BaseException) else None
    while current is not None:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current.verify_message or "certificate verify failed"
        current = current.__cause__ or current.__context__
    text = str(error)
    if "certificate verify failed" in text:
        return "certificate verify failed" + text.split("certificate verify failed", 1)[1][:80]
    return text[:120] or "certificate verify failed"


def html_message(url: str, status: int, title: str) -> str:
    """An HTML page where the API answers JSON: a proxy, captive portal or wrong URL."""
    shown = f' "{title}"' if title else ""
    return (
        f"{url} answered an HTML page{shown} (text/html, HTTP {status}), not the API's JSON: a "
        f"proxy or "
        f"captive portal answered, or the URL is not the API; {PROXY_HINT}, and check the API "
        f"URL (--api-url, CHEKT_API_URL)"
    )
