"""The one client every command uses to talk to CHeKT (or the sandbox).

It is thread-safe: callers run its methods from a pool of `concurrency` threads sharing one
connection pool (measured faster here than an asyncio client; see the README). Every request
carries a fresh `x-partner-trace-id`; every write an `Idempotency-Key` derived from the intended
change alone (a create's from the contact's identity alone, not its values), so a retry, or
another run making the same change at the same moment, is replayed rather than repeated. A
replayed answer is confirmed by reading the contact back: when the change is no longer in
effect (it was undone since), it is sent again under the key's next generation. Because a
server may ignore that header, a create whose answer was lost is looked up by
`external_contact_id` before it is retried: one row never makes two contacts.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, NoReturn

import httpx

from . import __version__
from .auth import TokenSource, read_token_response
from .diagnose import cause_of, html_message, transport_message
from .errors import ApiError, AuthError, Conflict, NotFound, TransportError, error_class
from .models import Contact, Exchange, NewContact, Site, WriteResult
from .ratelimit import Pacer
from .retries import RetryPolicy
from .runlog import RunLog
from .settings import Settings

DEFAULT_CONCURRENCY = 32
RETRYABLE = {429, 500, 502, 503, 504}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


# A server that stores answers per key may also answer 409 while the first request with that key
# is still being handled; the answer to wait for is then the first request's.
IN_PROGRESS_CODES = {"idempotency_in_progress", "idempotency_key_in_use", "request_in_progress"}
# How many times a change is sent again under a new key after replayed answers that are no longer
# in effect: each generation is replayed only if an earlier run used it and was then undone.
MAX_GENERATIONS = 16
# A created contact older than the request that reports its creation, by the server's own clock
# (its `Date`, to the second, less the time the request took, less this margin for rounding): the
# answer is a replay even when the server does not say so.
REPLAY_MARGIN = timedelta(seconds=1)


def stale_replay_message(identity: tuple[int, int, str | int, str], generations: int) -> str:
    """Why a change was not made after `generations` stale replays, and what to do."""
    _, site_id, subject, action = identity
    who = f"{subject}" if action == "create" else f"contact {subject}"
    instead = {
        "create": "give the contact another external_contact_id, which makes it a new change",
        "update": "send other values, which makes it a new change",
    }.get(action, "make the change in CHeKT itself")
    return (
        f"{action} of {who} on site {site_id} not made: this same change was made and undone "
        f"{generations} times (apply, then rollback) within 24 hours, and CHeKT still answers each "
        f"of its {generations} idempotency keys with the first result, which is gone; past "
        f"{generations} the tool does not try another key, so nothing was doubled. Run the same "
        f"command again once CHeKT forgets the oldest of those answers (24 hours after it was "
        f"given), or {instead}"
    )


def idempotency_key(
    dealer_id: int, site_id: int, subject: str | int, action: str, payload: Any, generation: int = 0
) -> str:
    """Derived from the intended change alone (dealer, site, the external id or contact id,
    action, payload), never from time or from the state it was planned from: every run meaning
    the same change sends the same key, so the server makes it once however many runs send it.
    A create's payload is None: its key names the contact (its external id on a site), so two
    runs creating it with different values send one key and the server makes one contact.
    `generation` gives the next key when a replayed answer turns out to be stale."""
    identity = json.dumps(
        [dealer_id, site_id, str(subject), action, payload, generation], sort_keys=True, default=str
    )
    return "bc-" + hashlib.sha256(identity.encode()).hexdigest()[:40]


@dataclass
class _Sent:
    response: httpx.Response | None
    exchange: Exchange
    recovered: Any = None
    # An earlier attempt of this request may have been carried out (no answer, or a 5xx): a
    # replayed answer may then be this request's own.
    ambiguous: bool = False


class ChektClient:
    """Operations on sites and contacts, with auth, pacing, retries and an exchange log."""

    def __init__(
        self,
        settings: Settings,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        rate: float | None = None,
        retry: RetryPolicy | None = None,
        log: RunLog | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """`clock` (monotonic), `sleep` and `wall` (Unix time) are the client's time: pacing,
        backoff and token lifetimes run on them. `sleep` defaults to `retries.sleep`, which
        `retries.set_testing()` turns off."""
        self.settings = settings
        self.concurrency = concurrency
        self.timeout = timeout  # per answer: a write unanswered may land until then
        self.retry = retry or RetryPolicy()
        self.log = log or RunLog()
        self.pacer = Pacer(rate, clock, sleep, wall)
        self.tokens = TokenSource(settings, self._fetch_token, clock)
        self._sleep, self._wall = self.pacer.sleep, wall
        # Whether the server has answered (with something other than an HTML page) yet: until
        # then, a refused connection or a proxy's page is not a blip to retry, but the setting
        # to fix. A name that does not resolve and an untrusted certificate never are.
        self.reached = False
        self.http = httpx.Client(
            base_url=settings.api_url,
            transport=transport,
            verify=settings.ssl_context(),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0), pool=None),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            headers={"User-Agent": f"bulk-contacts/{__version__}", "Accept": "application/json"},
        )

    def __repr__(self) -> str:
        return f"ChektClient({self.settings.api_url!r}, auth={self.settings.auth_kind!r})"

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ChektClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # reads

    def list_sites(self, dealer_id: int) -> list[Site]:
        sent = self._send("GET", f"/partner/v1/dealers/{dealer_id}/sites")
        return [Site.from_api(item) for item in self._json_list(sent)]

    def list_sites_with_headers(self, dealer_id: int) -> tuple[list[Site], dict[str, str]]:
        """The site list and its answer's headers (names in lower case): the rate limit and
        the server's Date, for `check`."""
        sent = self._send("GET", f"/partner/v1/dealers/{dealer_id}/sites")
        assert sent.response is not None
        headers = {k.lower(): v for k, v in sent.response.headers.items()}
        return [Site.from_api(item) for item in self._json_list(sent)], headers

    def list_contacts(self, dealer_id: int, site_id: int) -> list[Contact]:
        sent = self._send("GET", _contacts_path(dealer_id, site_id))
        return [Contact.from_api(item) for item in self._json_list(sent)]

    def get_contact(self, dealer_id: int, site_id: int, contact_id: int) -> Contact:
        sent = self._send("GET", f"{_contacts_path(dealer_id, site_id)}/{contact_id}")
        return Contact.from_api(self._json(sent))

    # writes

    def create_contact(
        self, dealer_id: int, site_id: int, contact: NewContact, generation: int = 0
    ) -> WriteResult:
        """`generation`: the key's first generation (a later one sends the create again after
        the verification found an answer under an earlier one did nothing)."""
        external_id = contact.external_contact_id

        def recover() -> Contact | None:
            return self._find_by_external_id(dealer_id, site_id, external_id)

        return self._idempotent_write(
            "POST",
            _contacts_path(dealer_id, site_id),
            (dealer_id, site_id, external_id, "create"),
            contact.payload(),
            recover=recover,
            confirm=lambda created: self._still_there(dealer_id, site_id, created),
            keyed_by_identity=True,
            first_generation=generation,
        )

    def update_contact(
        self,
        dealer_id: int,
        site_id: int,
        contact_id: int,
        changes: Mapping[str, str | None],
        generation: int = 0,
    ) -> WriteResult:
        """Send only the fields given; a PUT of the same fields is safe to retry as it is.
        `generation` as for `create_contact`."""
        payload = dict(changes)

        def confirm(updated: WriteResult) -> WriteResult | None:
            current = self.get_contact(dealer_id, site_id, contact_id)  # NotFound: it is gone
            held = all((getattr(current, k) or None) == (v or None) for k, v in payload.items())
            return WriteResult(current, updated.exchange) if held else None

        return self._idempotent_write(
            "PUT",
            f"{_contacts_path(dealer_id, site_id)}/{contact_id}",
            (dealer_id, site_id, contact_id, "update"),
            payload,
            confirm=confirm,
            first_generation=generation,
        )

    def delete_contact(self, dealer_id: int, site_id: int, contact_id: int) -> WriteResult:
        def gone() -> str | None:
            try:
                self.get_contact(dealer_id, site_id, contact_id)
            except NotFound:
                return "deleted"
            return None

        def confirm(deleted: WriteResult) -> WriteResult | None:
            return deleted if gone() else None

        return self._idempotent_write(
            "DELETE",
            f"{_contacts_path(dealer_id, site_id)}/{contact_id}",
            (dealer_id, site_id, contact_id, "delete"),
            None,
            recover=gone,
            confirm=confirm,
        )

    def _idempotent_write(
        self,
        method: str,
        path: str,
        identity: tuple[int, int, str | int, str],
        payload: Any,
        *,
        confirm: Callable[[WriteResult], WriteResult | None],
        recover: Callable[[], Any] | None = None,
        keyed_by_identity: bool = False,
        first_generation: int = 0,
    ) -> WriteResult:
        """One write under its idempotency key. A replayed answer is confirmed by reading the
        contact back; when the change is no longer in effect, it is sent again under the key's
        next generation (a stale replay would otherwise report a change that is not there).

        With `keyed_by_identity` (creates), the key leaves the values out: a server refusing
        the key for a body other than its first request's (409 `idempotency_conflict`) means
        another request made this contact with other values. When `recover` finds it, it is
        the result, as made (the verification then reports the values that differ); when it is
        gone, the create is sent again under the next generation."""
        for generation in range(first_generation, first_generation + MAX_GENERATIONS):
            key = idempotency_key(*identity, None if keyed_by_identity else payload, generation)
            try:
                sent = self._send(method, path, body=payload, key=key, recover=recover)
            except Conflict as error:
                if not (keyed_by_identity and recover and error.code == "idempotency_conflict"):
                    raise
                found = recover()
                if found is None:
                    continue  # made under this key, then removed: the next generation
                exchange = Exchange(
                    error.status,
                    error.trace_id,
                    error.request_id,
                    error.attempts,
                    True,
                    "made by another request with other values; not changed",
                    generation,
                    by_another_run=True,
                )
                return WriteResult(found, exchange)
            result = self._write_result(sent)
            result = WriteResult(result.contact, replace(result.exchange, generation=generation))
            if sent.response is None or not _replayed(sent.response, result.contact, method):
                return result
            confirmed = confirm(result)
            if confirmed is not None:
                note = "replayed; confirmed" + (f" (generation {generation})" if generation else "")
                # No attempt of this request was carried out here: the answer replayed is
                # another run's (the same change, sent by it under the same key).
                other = not sent.ambiguous
                return WriteResult(
                    confirmed.contact,
                    replace(result.exchange, note=note, by_another_run=other),
                )
            self.log.decision(
                step="replay",
                action=identity[3],
                site_id=identity[1],
                subject=identity[2],
                reason=f"a replayed answer for a change no longer in effect; sent again "
                f"under key generation {generation + 1}",
            )
        raise Conflict(stale_replay_message(identity, MAX_GENERATIONS), code="stale_replay")

    def _write_result(self, sent: _Sent) -> WriteResult:
        if sent.recovered is not None:
            found = sent.recovered
            return WriteResult(found if isinstance(found, Contact) else None, sent.exchange)
        if sent.response is None or sent.response.status_code == 204 or not sent.response.content:
            return WriteResult(None, sent.exchange)  # a delete (maybe found done by a retry)
        return WriteResult(Contact.from_api(self._json(sent)), sent.exchange)

    def _still_there(
        self, dealer_id: int, site_id: int, created: WriteResult
    ) -> WriteResult | None:
        """The created contact as it is now; None when it is gone."""
        if created.contact is None:
            return None
        try:
            current = self.get_contact(dealer_id, site_id, created.contact.contact_id)
        except NotFound:
            return None
        return WriteResult(current, created.exchange)

    def _find_by_external_id(
        self, dealer_id: int, site_id: int, external_id: str
    ) -> Contact | None:
        matches = [
            c
            for c in self.list_contacts(dealer_id, site_id)
            if c.external_contact_id == external_id
        ]
        if len(matches) > 1:
            raise Conflict(
                f"site {site_id} holds {len(matches)} contacts with external_contact_id "
                f"{external_id!r}; resolve them in CHeKT first",
                code="duplicate_external_id",
            )
        return matches[0] if matches else None

    # the request loop

    def _send(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        key: str | None = None,
        recover: Callable[[], Any] | None = None,
        form: dict[str, str] | None = None,
    ) -> _Sent:
        """One logical request: paced, authorized, retried within the policy. After an answer
        that may hide a committed write (no answer, or 5xx), `recover` looks for the result
        before anything is sent again."""
        attempt, waited, refreshed, ambiguous = 0, 0.0, False, False
        authorized = form is None
        while True:
            attempt += 1
            trace_id = str(uuid.uuid4())
            token = None
            if authorized:  # the token endpoint is not paced: the limit counts API calls
                self.pacer.wait_turn()
            try:
                token = self.tokens.current() if authorized else None
                response, failure = self._attempt(
                    method, url, trace_id, attempt, token=token, body=body, key=key, form=form
                )
            finally:
                if authorized:
                    self.pacer.answered()
            if failure is None:
                assert response is not None
                return _Sent(response, _exchange(response, trace_id, attempt), None, ambiguous)
            if self._hopeless(failure):
                raise self._explain(failure, attempt)
            status = failure.status
            if status == 401 and authorized and not refreshed and not self._static_key:
                self.tokens.rejected(token or "")
                refreshed = True
                continue
            in_progress = status == 409 and failure.code in IN_PROGRESS_CODES
            if status is not None and status not in RETRYABLE and not in_progress:
                if status == 404 and method == "DELETE" and ambiguous:
                    # The earlier attempt deleted it; its answer was what got lost.
                    return _Sent(
                        None,
                        Exchange(
                            204, trace_id, None, attempt, True, "deleted by an earlier attempt"
                        ),
                    )
                raise self._explain(failure, attempt)
            ambiguous = ambiguous or (method in WRITES and status != 429 and not in_progress)
            if ambiguous and recover is not None:
                found = recover()
                if found is not None:
                    return _Sent(
                        None,
                        Exchange(
                            None,
                            trace_id,
                            failure.request_id,
                            attempt,
                            True,
                            "answer lost; found committed",
                        ),
                        found,
                    )
            delay = self.retry.delay(attempt, failure.retry_after)
            if status == 429:
                self.pacer.pause(delay)
            if not self.retry.allows(attempt, waited, delay):
                raise self._explain(failure, attempt)
            self._sleep(delay)
            waited += delay

    def _attempt(
        self,
        method: str,
        url: str,
        trace_id: str,
        attempt: int,
        *,
        token: str | None,
        body: Any,
        key: str | None,
        form: dict[str, str] | None,
    ) -> tuple[httpx.Response | None, ApiError | None]:
        headers = {"x-partner-trace-id": trace_id}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if key is not None:
            headers["Idempotency-Key"] = key
        started = time.perf_counter()
        path = httpx.URL(url).path if form is not None else url
        entry: dict[str, Any] = {
            "method": method,
            "path": path,
            "attempt": attempt,
            "trace_id": trace_id,
        }
        try:
            response = self.http.request(method, url, json=body, data=form, headers=headers)
        except httpx.TransportError as error:
            kind = "timeout" if isinstance(error, httpx.TimeoutException) else "connection"
            cause = cause_of(error)
            self.log.exchange(
                **entry,
                status=None,
                error=f"{kind}: {type(error).__name__} ({cause})",
                duration_ms=_ms(started),
                values=body,
            )
            if cause in ("refused", "dns", "tls"):
                message = transport_message(cause, str(self.http.base_url.join(url)), error)
            else:
                message = f"no answer ({kind} failed: {type(error).__name__})"
            lost = TransportError(
                message, trace_id=trace_id, attempts=attempt, method=method, path=path
            )
            lost.cause = cause
            return None, lost
        self.pacer.observe(
            response.headers.get("x-ratelimit-limit"),
            response.headers.get("x-ratelimit-remaining"),
            response.headers.get("x-ratelimit-reset"),
        )
        request_id = response.headers.get("x-request-id")
        self.log.exchange(
            **entry,
            status=response.status_code,
            request_id=request_id,
            duration_ms=_ms(started),
            values=body,
        )
        if _is_html(response):
            page = error_class(response.status_code) if response.status_code >= 400 else ApiError
            return response, page(
                html_message(
                    str(self.http.base_url.join(url)), response.status_code, _title(response)
                ),
                status=response.status_code,
                code="html_page",
                request_id=request_id,
                trace_id=trace_id,
                attempts=attempt,
                method=method,
                path=path,
            )
        self.reached = True
        if response.status_code < 400:
            return response, None
        failure = _failure(response, method, path, trace_id, attempt)
        failure.retry_after = _retry_after(response.headers.get("retry-after"), self._wall())
        return response, failure

    def _hopeless(self, failure: ApiError) -> bool:
        """A failure no retry mends: a name that does not resolve, an untrusted certificate, and
        before the server ever answered, a refused connection or an HTML page (a proxy's)."""
        if isinstance(failure, TransportError):
            if failure.cause in ("dns", "tls"):
                return True
            return failure.cause == "refused" and not self.reached
        return failure.code == "html_page" and (not self.reached or failure.status not in RETRYABLE)

    @property
    def _static_key(self) -> bool:
        return self.settings.credentials.bearer is not None

    def _explain(self, failure: ApiError, attempt: int) -> ApiError:
        failure.attempts = attempt
        if (
            isinstance(failure, AuthError)
            and failure.code != "html_page"
            and failure.path
            and "/partner/" in failure.path
        ):
            what = (
                self.settings.credentials.check_hint
                if self._static_key
                else "the client's credentials"
            )
            failure.message += f" (the API refused the access token; check {what})"
        return failure

    def _fetch_token(self, form: dict[str, str]) -> tuple[str, float]:
        token_url = self.settings.token_url
        try:
            sent = self._send("POST", token_url, form=form)
        except ApiError as error:
            if error.code == "html_page" or getattr(error, "cause", "other") != "other":
                raise  # its own words, naming the URL: no "refused the credentials"
            self._token_refused(error)
        assert sent.response is not None
        return read_token_response(sent.response, token_url)

    def _token_refused(self, error: ApiError) -> NoReturn:
        token_url = self.settings.token_url
        if isinstance(error, AuthError):
            raise AuthError(
                f"the token endpoint {token_url} refused the credentials "
                f"({error.code or error.status}: {error.message}); "
                f"check {self.settings.credentials.check_hint}",
                status=error.status,
                code=error.code,
                request_id=error.request_id,
                trace_id=error.trace_id,
                attempts=error.attempts,
            ) from None
        if error.status in (400, 403):
            raise AuthError(
                f"the token endpoint {token_url} refused the request "
                f"({error.code or error.status}: {error.message})",
                status=error.status,
                code=error.code,
                trace_id=error.trace_id,
            ) from None
        error.message = f"token endpoint {token_url}: {error.message}"
        raise error

    @staticmethod
    def _json(sent: _Sent) -> Any:
        assert sent.response is not None
        try:
            return sent.response.json()
        except ValueError:
            raise ApiError(
                "the API answered with a body that is not JSON",
                status=sent.response.status_code,
                trace_id=sent.exchange.trace_id,
            ) from None

    def _json_list(self, sent: _Sent) -> list[dict[str, Any]]:
        data = self._json(sent)
        if isinstance(data, dict):  # tolerate an envelope such as {"data": [...]}
            data = next((v for v in data.values() if isinstance(v, list)), data)
        if not isinstance(data, list):
            raise ApiError(
                "the API answered a list request without a list", trace_id=sent.exchange.trace_id
            )
        return data


def _exchange(response: httpx.Response, trace_id: str, attempt: int) -> Exchange:
    return Exchange(
        http_status=response.status_code,
        trace_id=trace_id,
        request_id=response.headers.get("x-request-id"),
        attempts=attempt,
        note="replayed" if response.headers.get("idempotency-replayed") else "",
    )


def _replayed(response: httpx.Response, contact: Contact | None, method: str) -> bool:
    """Whether an answer repeats one stored for an earlier request with the same key: the server
    says so (`Idempotency-Replayed`), or the contact it reports as just created is older than the
    request, by the server's own clock (its `Date` header less the time the request took), so a
    server that does not mark its replays is caught for creates too, unless the replayed create
    is younger than a second or two (then the verification reports it)."""
    if response.headers.get("idempotency-replayed", "").strip().lower() in ("true", "1", "yes"):
        return True
    if method != "POST" or contact is None or contact.created_at is None:
        return False
    try:
        answered = email.utils.parsedate_to_datetime(response.headers.get("date", ""))
    except (TypeError, ValueError):
        return False
    if answered.tzinfo is None:
        return False
    return contact.created_at < answered - response.elapsed - REPLAY_MARGIN


def _contacts_path(dealer_id: int, site_id: int) -> str:
    return f"/partner/v1/dealers/{dealer_id}/sites/{site_id}/contacts"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _failure(
    response: httpx.Response, method: str, path: str, trace_id: str, attempt: int
) -> ApiError:
    """The documented error body, an OAuth error body, or a clear word about anything else."""
    status = response.status_code
    code = field = request_id = None
    message = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    error = body.get("error")
    if isinstance(error, dict):
        code, message = error.get("code"), str(error.get("message") or "")
        field, request_id = error.get("field"), error.get("request_id")
    elif isinstance(error, str):
        code, message = error, str(body.get("error_description") or "")
    else:
        message = _describe_non_json(response)
    return error_class(status)(
        message or response.reason_phrase or "error",
        status=status,
        code=code,
        field=field,
        request_id=request_id or response.headers.get("x-request-id"),
        trace_id=trace_id,
        attempts=attempt,
        method=method,
        path=path,
    )


def _is_html(response: httpx.Response) -> bool:
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind in ("text/html", "application/xhtml+xml")


def _title(response: httpx.Response) -> str:
    """The page's title, else the start of its text."""
    found = re.search(r"<title[^>]*>(.*?)</title>", response.text[:5000], flags=re.I | re.S)
    text = found.group(1) if found else re.sub(r"<[^>]+>", " ", response.text[:2000])
    return " ".join(text.split())[:80]


def _describe_non_json(response: httpx.Response) -> str:
    kind = response.headers.get("content-type", "no content type").split(";")[0]
    text = re.sub(r"<[^>]+>", " ", response.text[:2000])
    text = " ".join(text.split())[:160]
    return f"unexpected {kind} answer (a proxy or gateway page?)" + (f": {text}" if text else "")


def _retry_after(value: str | None, now: float) -> float | None:
    """Retry-After in seconds or as an HTTP date (`now`: the Unix time)."""
    if not value:
        return None
    value = value.strip()
    if value.replace(".", "", 1).isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)
