"""The sandbox: an emulation of CHeKT's Partner API (token endpoint, sites, contacts) over SQLite.

Layers, outermost first: `Frontdoor` (request id, trace id echo, request log, injected faults),
`Gate` (bearer token, rate limit, dealer scope for `/partner/`), then the FastAPI routes. The
handlers are coroutines that run on the event loop and never await between reading and writing
the database, so concurrent requests cannot interleave inside one change.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import functools
import hashlib
import hmac
import inspect
import json
import math
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qs
from zoneinfo import available_timezones

import jwt
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..ratelimit import TokenBucket
from .config import BODY_TIMEOUT, MAX_BODY_BYTES, SandboxConfig
from .faults import Fate, FaultPlan
from .holds import WriteHold
from .models import (
    Contact,
    ContactCreate,
    ContactUpdate,
    ErrorBody,
    Site,
    SiteCreate,
    TokenResponse,
)
from .requestlog import RequestLog
from .store import Store

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# A JWT assertion is single-use and short-lived (the tool's last 300 s); a far `exp` is refused,
# as RFC 7523 allows, which also keeps it a number SQLite and floats hold.
MAX_ASSERTION_LIFETIME = 3600


class ApiError(Exception):
    """Private to the sandbox: an error the emulated API answers with (status, code, message,
    field), turned into the documented error body by the app. It never leaves the app; the
    client's own `bulk_contacts.errors.ApiError` is what a caller of the tool sees."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}


def error_payload(request_id: str, code: str, message: str, field: str | None = None) -> bytes:
    body = {"error": {"code": code, "message": message, "request_id": request_id, "field": field}}
    return json.dumps(body).encode()


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    if status == 204:
        return Response(status_code=204, headers=headers)
    return Response(
        json.dumps(payload).encode(),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def send_raw(
    send: Send,
    status: int,
    body: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def drop_connection(send: Send) -> None:
    """Close the client's socket with no answer, as a crashed proxy or a lost network would.

    Needs uvicorn's own `send` (a bound method of the request cycle holding the transport).
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise ConnectionAbortedError("sandbox fault: connection dropped")
    cycle.disconnected = True  # type: ignore[union-attr]  # so uvicorn writes nothing more
    transport.close()


def request_header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


class BodyRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class BodyLimits:
    """A request body is read whole before anything else sees it: at most `max_bytes` (a larger
    Content-Length is refused before a byte of the body is read), within `timeout` seconds (a
    body shorter than its Content-Length would otherwise hold the request open forever)."""

    max_bytes: int = MAX_BODY_BYTES
    timeout: float = BODY_TIMEOUT

    async def read_ahead(self, scope: Scope, receive: Receive) -> Receive:
        """A `receive` that replays the body read here, then hands over to the server's."""
        length = (request_header(scope, b"content-length") or "").strip()
        if length.isdigit() and int(length) > self.max_bytes:
            raise self._too_large()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise BodyRefused(
                    408,
                    "request_timeout",
                    f"The request body did not arrive in full within {self.timeout:g} s.",
                ) from None
            if message["type"] != "http.request":  # the client went away
                return _replay([message], receive)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                raise self._too_large()
            more = message.get("more_body", False)
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        return _replay([body], receive)

    def _too_large(self) -> BodyRefused:
        return BodyRefused(
            413,
            "payload_too_large",
            f"The request body is larger than {self.max_bytes} bytes; a contact or site is a "
            f"few hundred.",
        )


def _replay(messages: list[dict[str, Any]], receive: Receive) -> Receive:
    async def replay() -> dict[str, Any]:
        return messages.pop(0) if messages else await receive()

    return replay


class Frontdoor:
    """Request id, trace id echo, the request log, fault injection, and a test's hold on the
    writes (`holds.WriteHold`, set by `SandboxServer.hold_writes`)."""

    def __init__(
        self,
        app: ASGIApp,
        faults: FaultPlan | None,
        log: RequestLog,
        limits: BodyLimits | None = None,
    ) -> None:
        self.app, self.faults, self.log = app, faults, log
        self.limits = limits or BodyLimits()
        self.hold: WriteHold | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = "req_" + secrets.token_hex(8)
        trace_id = (request_header(scope, b"x-partner-trace-id") or "")[:200] or None
        scope.setdefault("state", {})["request_id"] = request_id
        status = 0

        async def answer(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = [(b"x-request-id", request_id.encode())]
                if trace_id:
                    extra.append((b"x-partner-trace-id", trace_id.encode("latin-1")))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        outcome = "answered"
        try:
            try:
                receive = await self.limits.read_ahead(scope, receive)
            except BodyRefused as refused:
                body = error_payload(request_id, refused.code, refused.message)
                await send_raw(answer, refused.status, body, [(b"connection", b"close")])
                outcome = f"refused:{refused.code}"
            else:
                outcome = await self._serve(scope, receive, send, answer, request_id)
        finally:
            self.log.write(
                method=scope["method"],
                path=scope["path"],
                status=status,
                outcome=outcome,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                trace_id=trace_id,
                request_id=request_id,
                client_id=scope["state"].get("client_id"),
            )

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, answer: Send, request_id: str
    ) -> str:
        path = scope["path"]
        hold = self.hold
        if hold is not None and path.startswith("/partner/") and scope["method"] in hold.methods:
            await hold.enter()
        if self.faults is None or not path.startswith(("/partner/", "/oauth/")):
            await self.app(scope, receive, answer)
            return "answered"
        if path.startswith("/oauth/"):  # the token endpoint gets latency, never a fault
            await asyncio.sleep(self.faults.faults.latency_ms / 1000)
            await self.app(scope, receive, answer)
            return "answered"
        draw = self.faults.draw(scope["method"] in WRITE_METHODS)
        if draw.delay:
            await asyncio.sleep(draw.delay)
        if draw.fate is Fate.ERROR:
            code = "internal_error" if draw.status == 500 else "service_unavailable"
            body = error_payload(request_id, code, "Injected sandbox fault.")
            await send_raw(answer, draw.status, body)
            return "fault:error"
        if draw.fate is Fate.DROP:
            drop_connection(send)
            return "fault:drop"
        if draw.fate is Fate.ACK_LOSS:
            return await self._lose_answer(scope, receive, send, answer, request_id, draw.status)
        await self.app(scope, receive, answer)
        return "answered"

    async def _lose_answer(
        self, scope: Scope, receive: Receive, send: Send, answer: Send, request_id: str, status: int
    ) -> str:
        """Let the write commit, then fail its answer (500, or a dropped connection)."""
        held: list[dict[str, Any]] = []

        async def hold(message: dict[str, Any]) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        committed = bool(held) and 200 <= held[0]["status"] < 300
        if not committed:
            for message in held:
                await answer(message)
            return "answered"
        if status:
            body = error_payload(request_id, "internal_error", "Injected sandbox fault.")
            await send_raw(answer, status, body)
            return "fault:ack_loss_error"
        drop_connection(send)
        return "fault:ack_loss_drop"


class Gate:
    """Authenticates `/partner/` calls, applies the client's rate limit and the dealer scope."""

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        store: Store,
        config: SandboxConfig,
        api: PartnerApi,
    ) -> None:
        self.app, self.store, self.config = app, store, config  # the FastAPI application
        self.api = api  # this sandbox's handlers, which the shared routes call
        self.scope_ids = {str(d) for d in config.dealers}
        self.buckets: dict[str, TokenBucket] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        serving = _SERVING.set(self.api)
        try:
            await self._call(scope, receive, send)
        finally:
            _SERVING.reset(serving)

    async def _call(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/partner/"):
            await self.app(scope, receive, send)
            return
        request_id = scope["state"]["request_id"]
        try:
            client_id = self._authenticate(scope)
            headers = self._rate_limit(client_id)
            self._check_dealer(scope["path"])
        except ApiError as error:
            body = error_payload(request_id, error.code, error.message, error.field)
            extra = [(k.encode(), v.encode()) for k, v in error.headers.items()]
            await send_raw(send, error.status, body, extra)
            return
        scope["state"]["client_id"] = client_id
        if scope["method"] in WRITE_METHODS:
            # Bodies are JSON whatever the Content-Type says, so `curl -d '{...}'` works.
            scope["headers"] = [
                *(h for h in scope["headers"] if h[0] != b"content-type"),
                (b"content-type", b"application/json"),
            ]
        if headers:
            extra_headers = [(k.encode(), v.encode()) for k, v in headers.items()]

            async def send_with_limits(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message["headers"], *extra_headers]}
                await send(message)

            await self.app(scope, receive, send_with_limits)
        else:
            await self.app(scope, receive, send)

    def _authenticate(self, scope: Scope) -> str:
        authorization = request_header(scope, b"authorization") or ""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "Missing bearer token in the Authorization header.")
        found = self.store.find_token(token.strip())
        if found is None:
            raise ApiError(401, "invalid_token", "The access token is not valid.")
        client_id, expires_at = found
        if expires_at <= time.time():
            raise ApiError(401, "token_expired", "The access token has expired; get a new one.")
        return client_id

    def _rate_limit(self, client_id: str) -> dict[str, str]:
        limit = self.config.rate_limit
        if limit is None:
            return {}
        bucket = self.buckets.get(client_id)
        if bucket is None:
            bucket = TokenBucket(limit / 60, self.config.bucket_capacity, self.config.limit_clock)
            self.buckets[client_id] = bucket
        allowed = bucket.try_take()
        now = self.config.limit_wall()
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(bucket.remaining),
            "X-RateLimit-Reset": str(math.ceil(now + bucket.seconds_until(bucket.capacity))),
        }
        if not allowed:
            retry_after = max(1, math.ceil(bucket.seconds_until(1)))
            raise ApiError(
                429,
                "rate_limited",
                f"Rate limit of {limit} requests per minute exceeded; retry after {retry_after} s.",
                headers={**headers, "Retry-After": str(retry_after)},
            )
        return headers

    def _check_dealer(self, path: str) -> None:
        parts = path.split("/")
        # /partner/v1/dealers/{dealerId}/...
        if (
            len(parts) > 4
            and parts[3] == "dealers"
            and self._canonical(parts[4]) not in self.scope_ids
        ):
            raise ApiError(
                403, "permission_denied", f"Dealer {parts[4]!r} is outside this client's scope."
            )

    @staticmethod
    def _canonical(dealer: str) -> str:
        return str(int(dealer)) if dealer.isascii() and dealer.isdigit() else dealer


def parse_id(value: str) -> int | None:
    """Ids travel as strings in paths; anything that is not a positive integer names nothing."""
    if value.isascii() and value.isdigit() and len(value) < 19:
        return int(value)
    return None


def body_digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


ERRORS = {
    400: "Bad request: malformed JSON or parameters.",
    401: "Missing, invalid or expired access token.",
    403: "The dealer is outside the client's scope.",
    404: "Unknown dealer, site or contact (or one that belongs to another site or dealer).",
    409: "The Idempotency-Key was used before with another body.",
    422: "A field is missing, empty, of the wrong type, or unknown (see error.field).",
    429: "Rate limit exceeded; see Retry-After.",
    500: "Server error (transient: safe to retry with backoff).",
    503: "Service unavailable (transient: safe to retry with backoff).",
}
READ_ERRORS = (401, 403, 404, 429, 500, 503)
WRITE_ERRORS = (400, 401, 403, 404, 409, 422, 429, 500, 503)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorBody, "description": ERRORS[s]} for s in statuses}


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Replays the stored response of an earlier write with the same key (24 h).",
    ),
]
TraceId = Annotated[
    str | None,
    Header(alias="x-partner-trace-id", description="Echoed back and written to the request log."),
]


@functools.cache
def _timezones() -> frozenset[str]:
    """The IANA zone names a site may have: read from disk once per process (about 16 ms each
    time; tests and the demo start many sandboxes)."""
    return frozenset(available_timezones())


class PartnerApi:
    """The route handlers, bound to one store and configuration."""

    def __init__(self, store: Store, config: SandboxConfig) -> None:
        self.store, self.config = store, config
        self.timezones = _timezones()
        self.public_key = (
            config.client_public_key.read_bytes() if config.client_public_key else None
        )

    # token endpoint
    async def issue_token(self, request: Request) -> Response:
        form = await self._token_form(request)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise ApiError(400, "invalid_request", "grant_type is required.", "grant_type")
        if grant_type != "client_credentials":
            raise ApiError(
                400,
                "unsupported_grant_type",
                f"Grant type {grant_type!r} is not supported; use client_credentials.",
                "grant_type",
            )
        if "client_assertion" in form:
            client_id = self._check_assertion(form, request)
        else:
            client_id = self._check_secret(form, request)
        token = "sbx_" + secrets.token_urlsafe(32)
        self.store.save_token(token, client_id, time.time() + self.config.token_ttl)
        payload = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.config.token_ttl,
        }
        return json_response(200, payload, {"Cache-Control": "no-store"})

    async def _token_form(self, request: Request) -> dict[str, str]:
        raw = await request.body()
        content_type = request.headers.get("content-type", "")
        try:
            if content_type.startswith("application/json"):
                data = json.loads(raw or b"{}")
                if not isinstance(data, dict):
                    raise ValueError
                return {str(k): str(v) for k, v in data.items()}
            pairs = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(
                400, "invalid_request", "The token request body is not a valid form."
            ) from None
        return {key: values[0] for key, values in pairs.items()}

    def _check_secret(self, form: dict[str, str], request: Request) -> str:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        authorization = request.headers.get("authorization", "")
        if authorization.lower().startswith("basic ") and not secret:
            try:
                decoded = base64.b64decode(authorization[6:]).decode()
            except ValueError:
                decoded = ""
            client_id, _, secret = decoded.partition(":")
        known = hmac.compare_digest(client_id.encode(), self.config.client_id.encode())
        if not (known and hmac.compare_digest(secret.encode(), self.config.client_secret.encode())):
            raise ApiError(401, "invalid_client", "Unknown client or wrong client secret.")
        return client_id

    def _check_assertion(self, form: dict[str, str], request: Request) -> str:
        if form.get("client_assertion_type") != JWT_BEARER:
            raise ApiError(
                400,
                "invalid_request",
                f"client_assertion_type must be {JWT_BEARER}.",
                "client_assertion_type",
            )
        if self.public_key is None:
            raise ApiError(
                401,
                "invalid_client",
                "JWT assertions are not enabled: start the sandbox with --client-public-key.",
            )
        base = str(request.base_url).rstrip("/")
        audiences = [base, base + "/", base + "/oauth/token"]
        claims = self._decode_assertion(form["client_assertion"], audiences)
        if claims["exp"] > time.time() + MAX_ASSERTION_LIFETIME:
            raise ApiError(
                400,
                "invalid_grant",
                f"The assertion's exp is too far ahead: at most {MAX_ASSERTION_LIFETIME} s.",
                "exp",
            )
        client_id = self.config.client_id
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            raise ApiError(401, "invalid_client", "iss and sub must both be the client id.")
        if form.get("client_id") not in (None, "", client_id):
            raise ApiError(401, "invalid_client", "client_id does not match the assertion.")
        if not self.store.use_assertion_id(str(claims["jti"]), float(claims["exp"])):
            raise ApiError(400, "invalid_grant", "This assertion's jti was already used.", "jti")
        return client_id

    def _decode_assertion(self, assertion: str, audiences: list[str]) -> dict[str, Any]:
        assert self.public_key is not None  # the assertion form is enabled only with a key
        try:
            return jwt.decode(
                assertion,
                self.public_key,
                algorithms=["RS256"],
                audience=audiences,
                options={"require": ["exp", "iss", "sub", "aud", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise ApiError(400, "invalid_grant", "The assertion has expired.", "exp") from None
        except jwt.InvalidAudienceError:
            message = f"The assertion's aud must be one of {', '.join(audiences)}."
            raise ApiError(400, "invalid_grant", message, "aud") from None
        except jwt.MissingRequiredClaimError as error:
            raise ApiError(400, "invalid_grant", str(error), error.claim) from None
        except OverflowError:  # a time claim of Infinity: PyJWT's int() of it overflows
            message = "The assertion's exp, iat and nbf must be finite numbers."
            raise ApiError(400, "invalid_grant", message) from None
        except jwt.InvalidTokenError as error:
            message = f"The assertion is not a valid RS256 JWT of this client: {error}."
            raise ApiError(401, "invalid_client", message) from None

    # sites
    def _site(self, dealer: str, site: str) -> dict[str, Any]:
        site_id = parse_id(site)
        found = self.store.get_site(int(dealer), site_id) if site_id is not None else None
        if found is None:
            raise ApiError(404, "not_found", f"Site {site!r} does not exist for dealer {dealer}.")
        return found

    async def list_sites(self, dealerId: str) -> Response:
        return json_response(200, self.store.list_sites(int(dealerId)))

    async def get_site(self, dealerId: str, siteId: str) -> Response:
        return json_response(200, self._site(dealerId, siteId))

    async def create_site(
        self, dealerId: str, body: SiteCreate, request: Request, key: IdempotencyKey = None
    ) -> Response:
        fields = body.model_dump(exclude_unset=True)
        if body.timezone not in self.timezones:
            raise ApiError(422, "validation_error", "timezone must be an IANA name.", "timezone")

        def create() -> tuple[int, Any]:
            return 201, self.store.create_site(int(dealerId), fields)

        return self._idempotent(request, key, fields, create)

    # contacts
    def _contact(self, site: dict[str, Any], contact: str) -> dict[str, Any]:
        contact_id = parse_id(contact)
        found = self.store.get_contact(site["site_id"], contact_id) if contact_id else None
        if found is None:
            raise ApiError(
                404, "not_found", f"Contact {contact!r} does not exist on site {site['site_id']}."
            )
        return found

    async def list_contacts(self, dealerId: str, siteId: str) -> Response:
        site = self._site(dealerId, siteId)
        return json_response(200, self.store.list_contacts(site["site_id"]))

    async def get_contact(self, dealerId: str, siteId: str, contactId: str) -> Response:
        site = self._site(dealerId, siteId)
        return json_response(200, self._contact(site, contactId))

    async def create_contact(
        self,
        dealerId: str,
        siteId: str,
        body: ContactCreate,
        request: Request,
        key: IdempotencyKey = None,
        trace: TraceId = None,
    ) -> Response:
        fields = body.model_dump(exclude_unset=True)

        def create() -> tuple[int, Any]:
            site = self._site(dealerId, siteId)
            return 201, self.store.create_contact(site["site_id"], fields)

        return self._idempotent(request, key, fields, create)

    async def update_contact(
        self,
        dealerId: str,
        siteId: str,
        contactId: str,
        body: ContactUpdate,
        request: Request,
        key: IdempotencyKey = None,
        trace: TraceId = None,
    ) -> Response:
        fields = body.model_dump(exclude_unset=True)

        def update() -> tuple[int, Any]:
            site = self._site(dealerId, siteId)
            contact = self._contact(site, contactId)
            return 200, self.store.update_contact(site["site_id"], contact["contact_id"], fields)

        return self._idempotent(request, key, fields, update)

    async def delete_contact(
        self,
        dealerId: str,
        siteId: str,
        contactId: str,
        request: Request,
        key: IdempotencyKey = None,
        trace: TraceId = None,
    ) -> Response:
        def delete() -> tuple[int, Any]:
            site = self._site(dealerId, siteId)
            contact = self._contact(site, contactId)
            self.store.delete_contact(site["site_id"], contact["contact_id"])
            return 204, None

        return self._idempotent(request, key, None, delete)

    def _idempotent(
        self,
        request: Request,
        key: str | None,
        payload: Any,
        perform: Callable[[], tuple[int, Any]],
    ) -> Response:
        """Run a write once per Idempotency-Key: a repeat replays the stored answer."""
        client_id = request.scope["state"]["client_id"]
        endpoint = f"{request.method} {request.url.path}"
        digest = body_digest(payload)
        with self.store.transaction():
            if key:
                found = self.store.find_idempotent(client_id, endpoint, key)
                if found is not None:
                    return self._replay(found, digest, self.config.mark_replays)
            status, result = perform()
            if key:
                self.store.save_idempotent(client_id, endpoint, key, digest, status, result)
        return json_response(status, result)

    @staticmethod
    def _replay(found: tuple[str, int, str | None], digest: str, mark: bool) -> Response:
        stored_digest, status, stored = found
        if stored_digest != digest:
            raise ApiError(
                409,
                "idempotency_conflict",
                "This Idempotency-Key was used with a different request body.",
                "Idempotency-Key",
            )
        payload = None if stored is None else json.loads(stored)
        return json_response(status, payload, {"Idempotency-Replayed": "true"} if mark else None)


def create_app(config: SandboxConfig, store: Store, log: RequestLog | None = None) -> Frontdoor:
    """The ASGI application, ready for uvicorn or httpx's ASGITransport. The FastAPI routes are
    built once per process (about 20 ms each time; tests and the demo start hundreds of
    sandboxes); each request finds its own sandbox's handlers in `_SERVING`, which `Gate` sets."""
    api = PartnerApi(store, config)
    for dealer in config.dealers:
        store.ensure_dealer(dealer)
    faults = FaultPlan(config.faults) if config.faults.any else None
    limits = BodyLimits(config.max_body_bytes, config.body_timeout)
    return Frontdoor(Gate(_routes(), store, config, api), faults, log or RequestLog(None), limits)


# The handlers of the sandbox a request came to: set by its `Gate`, in the request's own context
# (a copy per task, so concurrent requests to different sandboxes in one process do not mix).
_SERVING: contextvars.ContextVar[PartnerApi] = contextvars.ContextVar("sandbox_api")
_ROUTES_LOCK = threading.Lock()


@functools.cache
def _routes_once() -> FastAPI:
    app = FastAPI(
        title="CHeKT Partner API (bulk-contacts sandbox)",
        version="0.8-sandbox",
        description="Local emulation of the CHeKT Partner API: OAuth token, sites, site contacts.",
        docs_url=None,
        redoc_url=None,
    )
    _install_error_handlers(app)
    _add_routes(app)
    app.openapi = lambda: _describe(app)  # type: ignore[method-assign]  # FastAPI's documented hook
    return app


def _routes() -> FastAPI:
    """The FastAPI application shared by every sandbox of the process: it holds no state."""
    with _ROUTES_LOCK:  # sandboxes may start from several threads at once
        return _routes_once()


def _serving(name: str) -> Callable[..., Awaitable[Response]]:
    """A route handler calling `PartnerApi.<name>` of the sandbox the request came to, with the
    method's parameters (less `self`), which FastAPI reads to parse the request and describe it."""
    method = getattr(PartnerApi, name)

    async def handler(*args: Any, **kwargs: Any) -> Response:
        return await getattr(_SERVING.get(), name)(*args, **kwargs)

    signature = inspect.signature(method)
    without_self = signature.replace(parameters=list(signature.parameters.values())[1:])
    handler.__signature__ = without_self  # type: ignore[attr-defined]  # FastAPI reads it
    handler.__name__, handler.__qualname__, handler.__doc__ = name, name, method.__doc__
    return handler


ROUTE_HANDLERS = (
    "issue_token",
    "list_sites",
    "create_site",
    "get_site",
    "list_contacts",
    "create_contact",
    "get_contact",
    "update_contact",
    "delete_contact",
)


def _add_routes(app: FastAPI) -> None:
    api = {name: _serving(name) for name in ROUTE_HANDLERS}
    bearer = [Depends(HTTPBearer(auto_error=False))]
    sites = "/partner/v1/dealers/{dealerId}/sites"
    contacts = sites + "/{siteId}/contacts"
    app.add_api_route(
        "/oauth/token",
        api["issue_token"],
        methods=["POST"],
        summary="Get an access token (client credentials: secret or JWT assertion)",
        responses={
            200: {"model": TokenResponse, "description": "An access token."},
            **error_responses(400, 401),
        },
        openapi_extra={"requestBody": TOKEN_REQUEST_BODY},
        tags=["auth"],
    )
    routes: list[tuple[str, str, Any, int, Any, tuple[int, ...]]] = [
        ("GET", sites, api["list_sites"], 200, list[Site], READ_ERRORS),
        ("POST", sites, api["create_site"], 201, Site, WRITE_ERRORS),
        ("GET", sites + "/{siteId}", api["get_site"], 200, Site, READ_ERRORS),
        ("GET", contacts, api["list_contacts"], 200, list[Contact], READ_ERRORS),
        ("POST", contacts, api["create_contact"], 201, Contact, WRITE_ERRORS),
        ("GET", contacts + "/{contactId}", api["get_contact"], 200, Contact, READ_ERRORS),
        ("PUT", contacts + "/{contactId}", api["update_contact"], 200, Contact, WRITE_ERRORS),
        ("DELETE", contacts + "/{contactId}", api["delete_contact"], 204, None, WRITE_ERRORS),
    ]
    for method, path, handler, status, model, errors in routes:
        success: dict[str, Any] = {"description": "Success."}
        if model is not None:
            success["model"] = model
        else:
            success["description"] = "Deleted; no body."
        app.add_api_route(
            path,
            handler,
            methods=[method],
            status_code=status,
            responses={status: success, **error_responses(*errors)},
            dependencies=bearer,
            summary=(handler.__doc__ or handler.__name__.replace("_", " ")).strip(),
            tags=["sites" if "contacts" not in path else "contacts"],
        )


def _describe(app: FastAPI) -> dict[str, Any]:
    """FastAPI's description, less the 422 it adds to reads that cannot fail validation."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        spec = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for operations in spec["paths"].values():
            for operation in operations.values():
                described = operation["responses"].get("422", {})
                if "HTTPValidationError" in json.dumps(described):
                    del operation["responses"]["422"]
        for name in ("HTTPValidationError", "ValidationError"):
            spec.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = spec
    return app.openapi_schema


_GRANT = {"type": "string", "enum": ["client_credentials"]}
TOKEN_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "oneOf": [
                    {
                        "title": "Client secret",
                        "type": "object",
                        "properties": {
                            "grant_type": _GRANT,
                            "client_id": {"type": "string"},
                            "client_secret": {"type": "string"},
                            "audience": {"type": "string"},
                        },
                        "required": ["grant_type", "client_id", "client_secret"],
                        "additionalProperties": False,
                    },
                    {
                        "title": "Signed JWT assertion (private_key_jwt)",
                        "type": "object",
                        "properties": {
                            "grant_type": _GRANT,
                            "client_assertion_type": {"type": "string", "enum": [JWT_BEARER]},
                            "client_assertion": {"type": "string"},
                            "client_id": {"type": "string"},
                            "audience": {"type": "string"},
                        },
                        "required": ["grant_type", "client_assertion_type", "client_assertion"],
                        "additionalProperties": False,
                    },
                ]
            }
        }
    },
}


def _install_error_handlers(app: FastAPI) -> None:
    def respond(
        request: Request,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        request_id = request.scope.get("state", {}).get("request_id", "req_unknown")
        return Response(
            error_payload(request_id, code, message, field),
            status_code=status,
            media_type="application/json",
            headers=headers,
        )

    async def on_api_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ApiError)
        return respond(request, error.status, error.code, error.message, error.field, error.headers)

    async def on_http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        codes = {404: "not_found", 405: "method_not_allowed"}
        messages = {
            404: f"No such endpoint: {request.method} {request.url.path}.",
            405: f"Method {request.method} is not allowed on {request.url.path}.",
        }
        status = error.status_code
        return respond(
            request,
            status,
            codes.get(status, "http_error"),
            messages.get(status, str(error.detail)),
            headers=getattr(error, "headers", None),
        )

    async def on_validation_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        first = error.errors()[0]
        if first.get("type") == "json_invalid":
            return respond(request, 400, "invalid_json", "The request body is not valid JSON.")
        location = [str(part) for part in first.get("loc", ()) if part != "body"]
        field = ".".join(location) or None
        message = first.get("msg", "Invalid value")
        if first.get("type") == "extra_forbidden":
            message = "Unknown field"
        elif first.get("type") == "missing" and not location:
            message = "A JSON object body is required"
        text = f"{field}: {message}." if field else f"{message}."
        return respond(request, 422, "validation_error", text, field)

    async def on_crash(request: Request, error: Exception) -> Response:
        return respond(request, 500, "internal_error", "The sandbox failed to handle this request.")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_crash)
