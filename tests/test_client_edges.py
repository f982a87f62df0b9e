"""Client edge cases the sandbox cannot provoke, on httpx's MockTransport; and settings."""

from __future__ import annotations

import email.utils
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from bulk_contacts import retries
from bulk_contacts.client import ChektClient, idempotency_key
from bulk_contacts.errors import (
    ApiError,
    AuthError,
    ConfigError,
    Conflict,
    NotFound,
    Rejected,
    ServerError,
    TransportError,
)
from bulk_contacts.models import NewContact, parse_timestamp
from bulk_contacts.retries import RetryPolicy
from bulk_contacts.settings import ApiKey, ClientSecret, PrivateKeyJwt, resolve_settings

ENV = {"CHEKT_CLIENT_ID": "cid", "CHEKT_CLIENT_SECRET": "csecret"}
CONTACT = {
    "contact_id": 1,
    "external_contact_id": "x",
    "first_name": "A",
    "last_name": "B",
    "phone_number": None,
    "email": None,
    "created_at": "2025-01-01 00:00:00",
}


class Recorder:
    """A MockTransport handler that answers from a script and records what it was asked."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "tok", "expires_in": 3600})
        with self.lock:
            answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def api_calls(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path != "/oauth/token"]


def client_for(handler, env=ENV, **options) -> ChektClient:
    settings = resolve_settings(api_url="https://api.test", dealer=1, env=env)
    return ChektClient(settings, transport=httpx.MockTransport(handler), **options)


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """Backoff waits, recorded instead of slept."""
    waited: list[float] = []
    monkeypatch.setattr(retries, "sleep", waited.append)
    return waited


def test_an_html_502_from_a_proxy_is_a_clear_server_error(sleeps) -> None:
    page = "<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"
    handler = Recorder(httpx.Response(502, text=page, headers={"content-type": "text/html"}))
    client = client_for(handler, retry=RetryPolicy(max_attempts=3))
    with client, pytest.raises(ServerError) as caught:
        client.list_sites(1)
    message = str(caught.value)
    assert "HTTP 502" in message and "text/html" in message and "502 Bad Gateway" in message
    assert "<h1>" not in message
    assert caught.value.attempts == 3 and len(handler.api_calls()) == 3
    assert len(sleeps) == 2


def test_retry_after_as_an_http_date_is_honoured(sleeps) -> None:
    later = email.utils.formatdate(time.time() + 7, usegmt=True)
    handler = Recorder(
        httpx.Response(429, headers={"Retry-After": later}, json={"error": {"code": "rate"}}),
        httpx.Response(200, json=[]),
    )
    with client_for(handler) as client:
        assert client.list_sites(1) == []
    assert 5 <= sleeps[0] <= 8


def test_retry_after_in_seconds_is_honoured(sleeps) -> None:
    handler = Recorder(
        httpx.Response(503, headers={"Retry-After": "4"}), httpx.Response(200, json=[])
    )
    with client_for(handler) as client:
        client.list_sites(1)
    assert sleeps == [4.0]


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, Rejected), (403, ApiError), (404, NotFound), (409, Conflict), (422, Rejected)],
)
def test_client_errors_are_never_retried(sleeps, status, kind) -> None:
    handler = Recorder(
        httpx.Response(
            status,
            json={"error": {"code": "c", "message": "m", "request_id": "req_1", "field": "email"}},
        )
    )
    with client_for(handler) as client, pytest.raises(kind) as caught:
        client.update_contact(1, 2, 3, {"email": "x"})
    assert len(handler.api_calls()) == 1 and sleeps == []
    assert caught.value.status == status and caught.value.request_id == "req_1"
    assert caught.value.field == "email" and caught.value.trace_id


def test_attempts_and_total_wait_are_bounded(sleeps) -> None:
    handler = Recorder(httpx.ConnectError("refused"))
    policy = RetryPolicy(max_attempts=10, base_delay=1, max_delay=8, max_total_wait=20)
    with client_for(handler, retry=policy) as client, pytest.raises(TransportError) as caught:
        client.list_sites(1)
    assert sum(sleeps) <= 20 and caught.value.attempts == len(sleeps) + 1 < 10


def test_the_token_endpoint_down_is_a_transport_error_naming_it(sleeps) -> None:
    def handler(request):
        raise httpx.ConnectError("connection refused")

    client = client_for(handler, retry=RetryPolicy(max_attempts=2))
    with client, pytest.raises(TransportError) as caught:
        client.list_sites(1)
    # a refused connection before any answer: not retried, and named with the fix
    message = str(caught.value)
    assert "POST /oauth/token: nothing is listening at https://api.test" in message
    assert "check the API URL" in message and caught.value.attempts == 1 and sleeps == []


def test_one_token_refresh_at_a_time_however_many_requests_are_in_flight() -> None:
    token_calls = []
    gate = threading.Event()

    def handler(request):
        if request.url.path == "/oauth/token":
            token_calls.append(1)
            gate.wait(2)
            return httpx.Response(
                200, json={"access_token": f"t{len(token_calls)}", "expires_in": 3600}
            )
        return httpx.Response(200, json=[])

    with client_for(handler, concurrency=16) as client, ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(client.list_sites, 1) for _ in range(32)]
        time.sleep(0.2)
        gate.set()
        assert all(f.result() == [] for f in futures)
    assert len(token_calls) == 1


def test_a_401_refreshes_the_token_once_then_retries() -> None:
    tokens = iter(["old", "new"])
    seen = []

    def handler(request):
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": next(tokens), "expires_in": 3600})
        seen.append(request.headers["authorization"])
        if request.headers["authorization"] == "Bearer old":
            return httpx.Response(401, json={"error": {"code": "token_expired"}})
        return httpx.Response(200, json=[])

    with client_for(handler) as client:
        assert client.list_sites(1) == []
    assert seen == ["Bearer old", "Bearer new"]


def test_api_key_is_sent_as_the_bearer_token_with_no_token_request() -> None:
    handler = Recorder(httpx.Response(200, json=[]))
    with client_for(handler, env={"CHEKT_API_KEY": "chekt_test_abc"}) as client:
        client.list_sites(1)
    assert [r.url.path for r in handler.requests] == ["/partner/v1/dealers/1/sites"]
    assert handler.requests[0].headers["authorization"] == "Bearer chekt_test_abc"
    handler = Recorder(httpx.Response(401, json={"error": {"code": "invalid_token"}}))
    client = client_for(handler, env={"CHEKT_API_KEY": "chekt_test_abc"})
    with client, pytest.raises(AuthError) as caught:
        client.list_sites(1)
    assert "CHEKT_API_KEY" in str(caught.value) and "chekt_test_abc" not in str(caught.value)


def test_every_request_has_a_fresh_trace_id_and_writes_a_stable_key() -> None:
    handler = Recorder(httpx.Response(201, json=CONTACT))
    with client_for(handler) as client:
        new = NewContact("x", "A", "B")
        client.create_contact(1, 2, new)
        client.create_contact(1, 2, new)
        client.create_contact(1, 2, NewContact("x", "A", "C"))
    calls = handler.api_calls()
    traces = [r.headers["x-partner-trace-id"] for r in calls]
    assert len(set(traces)) == 3
    keys = [r.headers["idempotency-key"] for r in calls]
    # The change alone makes the key (no time, no state); a create's, the contact it makes alone
    # (not its values), so two runs creating it with other values send one key.
    assert keys[0] == keys[1] == keys[2]
    assert keys[0] == idempotency_key(1, 2, "x", "create", None)
    assert keys[0] != idempotency_key(1, 2, "y", "create", None)
    assert keys[0] != idempotency_key(1, 2, "x", "create", None, generation=1)


def test_created_at_in_both_documented_forms() -> None:
    assert parse_timestamp("2021-07-01T00:00:00.000Z") == parse_timestamp("2021-07-01 00:00:00")
    assert parse_timestamp("garbage") is None


# settings


def test_flags_win_over_environment_over_defaults() -> None:
    env = {**ENV, "CHEKT_API_URL": "https://api.chektdev.com/", "CHEKT_DEALER_ID": "77"}
    settings = resolve_settings(env=env)
    assert settings.api_url == "https://api.chektdev.com"
    assert settings.token_url == "https://api.chektdev.com/oauth/token"
    assert settings.dealer_id == 77
    settings = resolve_settings(
        api_url="http://127.0.0.1:1", dealer="5", env=env, token_url="https://auth.example/token"
    )
    assert (settings.api_url, settings.token_url, settings.dealer_id) == (
        "http://127.0.0.1:1",
        "https://auth.example/token",
        5,
    )
    assert settings.assertion_audience == "https://auth.example/"
    assert resolve_settings(env={**ENV, "CHEKT_DEALER_ID": "1"}).api_url == "https://api.chekt.com"
    assert isinstance(
        resolve_settings(env={**ENV, "CHEKT_DEALER_ID": "1"}).credentials, ClientSecret
    )


@pytest.mark.parametrize(
    ("env", "names", "setting"),
    [
        ({}, ["CHEKT_CLIENT_ID", "CHEKT_API_KEY"], "credentials"),
        (
            {"CHEKT_CLIENT_ID": "x"},
            ["CHEKT_CLIENT_SECRET", "CHEKT_PRIVATE_KEY_FILE"],
            "credentials",
        ),
        ({**ENV}, ["CHEKT_DEALER_ID"], "dealer"),
        ({**ENV, "CHEKT_DEALER_ID": "abc"}, ["CHEKT_DEALER_ID", "'abc'"], "dealer"),
        (
            {**ENV, "CHEKT_DEALER_ID": "1", "CHEKT_API_URL": "ftp://x"},
            ["CHEKT_API_URL", "'ftp://x'"],
            "api_url",
        ),
        (
            {
                "CHEKT_CLIENT_ID": "x",
                "CHEKT_PRIVATE_KEY_FILE": "/nonexistent.pem",
                "CHEKT_DEALER_ID": "1",
            },
            ["CHEKT_PRIVATE_KEY_FILE", "/nonexistent.pem"],
            "credentials",
        ),
    ],
)
def test_a_missing_or_bad_setting_names_what_to_set(env, names, setting) -> None:
    """The library names the value and the variable; `setting` lets the command line add its
    flag (tests/test_errors.py)."""
    with pytest.raises(ConfigError) as caught:
        resolve_settings(env=env)
    for name in names:
        assert name in str(caught.value)
    assert "--" not in str(caught.value)
    assert caught.value.setting == setting


def test_private_key_and_api_key_credentials(tmp_path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "key.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    env = {"CHEKT_CLIENT_ID": "x", "CHEKT_PRIVATE_KEY_FILE": str(pem), "CHEKT_AUDIENCE": "api"}
    creds = resolve_settings(env=env, require_dealer=False).credentials
    assert isinstance(creds, PrivateKeyJwt) and creds.audience == "api"
    assert "PRIVATE KEY" not in repr(creds)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        resolve_settings(env={**env, "CHEKT_PRIVATE_KEY_FILE": str(bad)}, require_dealer=False)
    creds = resolve_settings(env={"CHEKT_API_KEY": "chekt_live_zz"}, require_dealer=False)
    assert isinstance(creds.credentials, ApiKey) and "chekt_live_zz" not in repr(creds)


def test_credentials_are_one_protocol_the_client_only_asks() -> None:
    """Any object answering the protocol works (here a bearer token issued elsewhere); settings,
    auth and client never ask the credentials' type."""
    import ast
    from dataclasses import replace
    from pathlib import Path

    from bulk_contacts.credentials import Credentials

    class IssuedToken:
        kind = "issued token"
        check_hint = "the issued token"
        bearer = "issued-abc"

        def token_request(self, audience: str) -> dict[str, str]:
            raise AssertionError("not asked")

    issued: Credentials = IssuedToken()
    handler = Recorder(httpx.Response(200, json=[]))
    settings = replace(
        resolve_settings(api_url="https://api.test", dealer=1, env=ENV), credentials=issued
    )
    with ChektClient(settings, transport=httpx.MockTransport(handler)) as client:
        client.list_sites(1)
        assert "issued token" in repr(client)
    assert [r.headers["authorization"] for r in handler.requests] == ["Bearer issued-abc"]
    package = Path(__file__).parent.parent / "bulk_contacts"
    for name in ("settings.py", "auth.py", "client.py"):
        tree = ast.parse((package / name).read_text(encoding="utf-8"))
        kinds = {"ApiKey", "ClientSecret", "PrivateKeyJwt"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance":
                assert not kinds & {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}, name
