"""The sandbox as a stand-in for CHeKT: every endpoint and status, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from bulk_contacts.sandbox import SandboxServer

from .conftest import get_token

SITES = "/partner/v1/dealers/12345/sites"
CONTACT_FIELDS = {
    "contact_id",
    "external_contact_id",
    "first_name",
    "last_name",
    "phone_number",
    "email",
    "created_at",
}
JOHN = {
    "external_contact_id": "1234",
    "first_name": "John",
    "last_name": "Doe",
    "phone_number": "1234567890",
    "email": "john.doe@example.com",
}


def make_site(api: httpx.Client, external: str = "ext-A") -> int:
    response = api.post(
        SITES, json={"external_site_id": external, "name": "Site", "timezone": "America/New_York"}
    )
    assert response.status_code == 201, response.text
    return response.json()["site_id"]


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "request_id", "field"}
    assert body["error"]["request_id"].startswith("req_")
    return body["error"]


# token endpoint


def test_token_with_client_secret(sandbox: SandboxServer) -> None:
    response = httpx.post(
        f"{sandbox.url}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "sandbox-client",
            "client_secret": "sandbox-secret",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"]
    assert response.headers["cache-control"] == "no-store"


def test_token_ttl_is_configurable(start_sandbox) -> None:
    server = start_sandbox(token_ttl=7)
    response = httpx.post(
        f"{server.url}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "sandbox-client",
            "client_secret": "sandbox-secret",
        },
    )
    assert response.json()["expires_in"] == 7


@pytest.mark.parametrize(
    ("form", "status", "code"),
    [
        (
            {
                "grant_type": "client_credentials",
                "client_id": "sandbox-client",
                "client_secret": "wrong",
            },
            401,
            "invalid_client",
        ),
        (
            {
                "grant_type": "client_credentials",
                "client_id": "someone",
                "client_secret": "sandbox-secret",
            },
            401,
            "invalid_client",
        ),
        (
            {
                "grant_type": "password",
                "client_id": "sandbox-client",
                "client_secret": "sandbox-secret",
            },
            400,
            "unsupported_grant_type",
        ),
        (
            {"client_id": "sandbox-client", "client_secret": "sandbox-secret"},
            400,
            "invalid_request",
        ),
    ],
)
def test_token_errors(sandbox: SandboxServer, form: dict, status: int, code: str) -> None:
    response = httpx.post(f"{sandbox.url}/oauth/token", data=form)
    assert response.status_code == status
    assert error_of(response)["code"] == code


def test_unknown_and_missing_tokens_are_401(sandbox: SandboxServer) -> None:
    assert httpx.get(sandbox.url + SITES).status_code == 401
    response = httpx.get(sandbox.url + SITES, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_token"


def test_expired_token_is_401(start_sandbox) -> None:
    server = start_sandbox(token_ttl=1)
    token = get_token(server.url)
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(server.url + SITES, headers=headers).status_code == 200
    response = poll_until(
        lambda: httpx.get(server.url + SITES, headers=headers),
        lambda r: r.status_code != 200,
        seconds=5,
    )
    assert response.status_code == 401
    assert error_of(response)["code"] == "token_expired"


def poll_until(call, done, seconds: float):
    import time

    deadline = time.monotonic() + seconds
    while True:
        result = call()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


# dealer scope


def test_dealer_outside_scope_is_403_whether_or_not_it_exists(start_sandbox, tmp_path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(
        '{"dealers": [{"dealer_id": 777, "sites": [{"site_id": 5, "name": "Other"}]},'
        ' {"dealer_id": 12345}]}'
    )
    server = start_sandbox(seed=seed, dealers=(12345, 555))
    headers = {"Authorization": f"Bearer {get_token(server.url)}"}
    for dealer in ("777", "999", "abc"):
        response = httpx.get(f"{server.url}/partner/v1/dealers/{dealer}/sites", headers=headers)
        assert response.status_code == 403
        assert error_of(response)["code"] == "permission_denied"
    for dealer in ("12345", "555"):
        response = httpx.get(f"{server.url}/partner/v1/dealers/{dealer}/sites", headers=headers)
        assert response.status_code == 200


# sites


def test_sites_create_list_get(api: httpx.Client) -> None:
    response = api.post(
        SITES,
        json={
            "external_site_id": "ext-A",
            "name": "Main St",
            "timezone": "Europe/Paris",
            "account_number": "ACCT-1",
        },
    )
    assert response.status_code == 201
    site = response.json()
    assert set(site) == {
        "site_id",
        "external_site_id",
        "name",
        "monitoring_station_id",
        "external_monitoring_station_id",
        "account_number",
        "address1",
        "address2",
        "timezone",
        "is_activated",
        "created_at",
    }
    assert isinstance(site["site_id"], int)
    assert site["is_activated"] == 1
    assert api.get(SITES).json() == [site]
    assert api.get(f"{SITES}/{site['site_id']}").json() == site
    missing = api.get(f"{SITES}/999")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"


def test_site_requires_documented_fields(api: httpx.Client) -> None:
    response = api.post(SITES, json={"external_site_id": "x", "name": "n"})
    assert response.status_code == 422
    assert error_of(response)["field"] == "timezone"
    response = api.post(SITES, json={"external_site_id": "x", "name": "n", "timezone": "Mars/Base"})
    assert response.status_code == 422
    assert error_of(response)["field"] == "timezone"


# contacts


def test_contact_lifecycle_exactly_as_the_reference(api: httpx.Client) -> None:
    site = make_site(api)
    base = f"{SITES}/{site}/contacts"
    created = api.post(base, json=JOHN)
    assert created.status_code == 201
    contact = created.json()
    assert set(contact) == CONTACT_FIELDS
    assert isinstance(contact["contact_id"], int)
    assert {k: contact[k] for k in JOHN} == JOHN
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", contact["created_at"])

    assert api.get(base).json() == [contact]
    one = api.get(f"{base}/{contact['contact_id']}")
    assert one.status_code == 200 and one.json() == contact

    updated = api.put(f"{base}/{contact['contact_id']}", json={"first_name": "Jane"})
    assert updated.status_code == 200
    assert updated.json() == {**contact, "first_name": "Jane"}  # only the field sent changed

    cleared = api.put(f"{base}/{contact['contact_id']}", json={"email": None})
    assert cleared.json()["email"] is None and cleared.json()["phone_number"] == "1234567890"

    deleted = api.delete(f"{base}/{contact['contact_id']}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert api.get(f"{base}/{contact['contact_id']}").status_code == 404
    assert api.get(base).json() == []


def test_contact_through_another_site_or_unknown_ids_is_404(api: httpx.Client) -> None:
    site_a, site_b = make_site(api, "a"), make_site(api, "b")
    contact = api.post(f"{SITES}/{site_a}/contacts", json=JOHN).json()
    for path in (
        f"{SITES}/{site_b}/contacts/{contact['contact_id']}",
        f"{SITES}/999/contacts/{contact['contact_id']}",
        f"{SITES}/{site_a}/contacts/999",
        f"{SITES}/{site_a}/contacts/abc",
        f"{SITES}/xyz/contacts",
    ):
        for method in ("GET", "PUT", "DELETE"):
            if path.endswith("contacts") and method != "GET":
                continue
            response = api.request(
                method, path, json={"first_name": "X"} if method == "PUT" else None
            )
            assert response.status_code == 404, (method, path)
            assert error_of(response)["code"] == "not_found"
    assert api.post(f"{SITES}/999/contacts", json=JOHN).status_code == 404
    assert api.get(f"{SITES}/{site_a}/contacts").json() == [contact]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**JOHN, "first_name": ""}, "first_name"),
        ({**JOHN, "last_name": "   "}, "last_name"),
        ({k: v for k, v in JOHN.items() if k != "external_contact_id"}, "external_contact_id"),
        ({**JOHN, "first_name": 42}, "first_name"),
        ({**JOHN, "phone_number": 2025550143}, "phone_number"),
        ({**JOHN, "nickname": "JD"}, "nickname"),
    ],
)
def test_bad_contact_bodies_are_422_naming_the_field(
    api: httpx.Client, body: dict, field: str
) -> None:
    site = make_site(api)
    response = api.post(f"{SITES}/{site}/contacts", json=body)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert error["field"] == field
    assert api.get(f"{SITES}/{site}/contacts").json() == []


def test_update_rejects_clearing_a_name_and_unknown_fields(api: httpx.Client) -> None:
    site = make_site(api)
    contact = api.post(f"{SITES}/{site}/contacts", json=JOHN).json()
    path = f"{SITES}/{site}/contacts/{contact['contact_id']}"
    for body, field in (
        ({"first_name": None}, "first_name"),
        ({"last_name": ""}, "last_name"),
        ({"external_contact_id": "9"}, "external_contact_id"),
    ):
        response = api.put(path, json=body)
        assert response.status_code == 422, body
        assert error_of(response)["field"] == field
    assert api.get(path).json() == contact


def test_malformed_json_and_non_object_bodies(api: httpx.Client) -> None:
    site = make_site(api)
    response = api.post(
        f"{SITES}/{site}/contacts",
        content=b'{"first_name": ',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_json"
    response = api.post(f"{SITES}/{site}/contacts", json=[JOHN])
    assert response.status_code == 422
    error_of(response)


def test_unknown_routes_and_methods_use_the_error_body(api: httpx.Client) -> None:
    response = api.get("/partner/v1/nothing-here")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    response = api.get("/not/partner")
    assert response.status_code == 404
    error_of(response)
    response = api.patch(f"{SITES}/1/contacts/1", json={})
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


# idempotency


def test_idempotency_key_replays_instead_of_repeating(api: httpx.Client) -> None:
    site = make_site(api)
    base = f"{SITES}/{site}/contacts"
    first = api.post(base, json=JOHN, headers={"Idempotency-Key": "k-1"})
    again = api.post(base, json=JOHN, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotency-replayed"] == "true"
    assert len(api.get(base).json()) == 1
    other = api.post(base, json=JOHN, headers={"Idempotency-Key": "k-2"})
    assert other.json()["contact_id"] != first.json()["contact_id"]


def test_same_key_with_another_body_is_409(api: httpx.Client) -> None:
    site = make_site(api)
    base = f"{SITES}/{site}/contacts"
    api.post(base, json=JOHN, headers={"Idempotency-Key": "k"})
    response = api.post(
        base, json={**JOHN, "first_name": "Johnny"}, headers={"Idempotency-Key": "k"}
    )
    assert response.status_code == 409
    assert error_of(response)["code"] == "idempotency_conflict"
    assert len(api.get(base).json()) == 1


def test_idempotent_update_and_delete(api: httpx.Client) -> None:
    site = make_site(api)
    contact = api.post(f"{SITES}/{site}/contacts", json=JOHN).json()
    path = f"{SITES}/{site}/contacts/{contact['contact_id']}"
    key = {"Idempotency-Key": "upd"}
    assert api.put(path, json={"first_name": "A"}, headers=key).json()["first_name"] == "A"
    api.put(path, json={"first_name": "B"})
    replay = api.put(path, json={"first_name": "A"}, headers=key)
    assert replay.json()["first_name"] == "A"  # the stored answer, not a second write
    assert api.get(path).json()["first_name"] == "B"
    assert api.delete(path, headers={"Idempotency-Key": "del"}).status_code == 204
    assert api.delete(path, headers={"Idempotency-Key": "del"}).status_code == 204
    assert api.delete(path).status_code == 404


# rate limiting, trace ids


def test_rate_limit_bucket_headers_and_429(start_sandbox) -> None:
    # 6 a minute: a token comes back every 10 s, so the fourth request meets the empty bucket
    # however busy the machine (at 60 a minute, 4 requests spread over a second did not).
    server = start_sandbox(rate_limit=6, burst=3)
    headers = {"Authorization": f"Bearer {get_token(server.url)}"}
    answers = [httpx.get(server.url + SITES, headers=headers) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    for response in answers:
        assert response.headers["x-ratelimit-limit"] == "6"
        assert int(response.headers["x-ratelimit-reset"]) > 0
    assert [r.headers["x-ratelimit-remaining"] for r in answers[:3]] == ["2", "1", "0"]
    limited = answers[3]
    assert int(limited.headers["retry-after"]) >= 1
    assert error_of(limited)["code"] == "rate_limited"
    # unauthenticated calls and the token endpoint are not counted
    assert httpx.get(server.url + SITES).status_code == 401


def test_no_rate_limit_headers_unless_asked(api: httpx.Client) -> None:
    response = api.get(SITES)
    assert "x-ratelimit-limit" not in response.headers


def test_trace_id_is_echoed_and_logged(start_sandbox, tmp_path) -> None:
    log = tmp_path / "requests.jsonl"
    server = start_sandbox(request_log=log)
    token = get_token(server.url)
    trace = "550e8400-e29b-41d4-a716-446655440000"
    response = httpx.get(
        server.url + SITES,
        headers={"Authorization": f"Bearer {token}", "x-partner-trace-id": trace},
    )
    assert response.headers["x-partner-trace-id"] == trace
    server.stop()
    import json

    entries = [json.loads(line) for line in log.read_text().splitlines()]
    mine = [e for e in entries if e["trace_id"] == trace]
    assert len(mine) == 1
    assert mine[0]["status"] == 200 and mine[0]["request_id"] == response.headers["x-request-id"]
    assert token not in log.read_text() and "sandbox-secret" not in log.read_text()


# concurrency


def test_200_parallel_creates_make_200_distinct_contacts(api: httpx.Client, sandbox) -> None:
    site = make_site(api)
    base = f"{SITES}/{site}/contacts"

    def create(n: int) -> int:
        response = api.post(base, json={**JOHN, "external_contact_id": f"c{n}"})
        assert response.status_code == 201
        return response.json()["contact_id"]

    with ThreadPoolExecutor(32) as pool:
        ids = list(pool.map(create, range(200)))
    assert len(set(ids)) == 200
    listed = api.get(base).json()
    assert sorted(c["contact_id"] for c in listed) == sorted(ids)
    assert {c["external_contact_id"] for c in listed} == {f"c{n}" for n in range(200)}
