"""The sandbox against hostile requests: numbers past what SQLite holds, bodies too large or
shorter than announced, and its secret kept off the command line. Every answer uses the error
envelope; none is a 500."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bulk_contacts.sandbox import SandboxConfig, SandboxServer

from . import warm
from .conftest import get_token, run_in_process

SITES = "/partner/v1/dealers/12345/sites"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
INT64_MAX = 2**63 - 1


def envelope(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "request_id", "field"}
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return body["error"]


def site(**extra: object) -> dict:
    return {"external_site_id": "ext", "name": "Site", "timezone": "UTC", **extra}


# numbers out of range


@pytest.mark.parametrize(
    "station",
    [10**20, -(10**20), INT64_MAX + 1, -(2**63) - 1, int("9" * 4000)],
    ids=["1e20", "-1e20", "int64-max+1", "int64-min-1", "4000-digits"],
)
def test_a_station_id_past_int64_is_422_naming_the_field(api: httpx.Client, station) -> None:
    response = api.post(SITES, json=site(monitoring_station_id=station))
    assert response.status_code == 422, response.text
    error = envelope(response)
    assert error["code"] == "validation_error" and error["field"] == "monitoring_station_id"


def test_the_largest_station_id_sqlite_holds_is_kept(api: httpx.Client) -> None:
    response = api.post(SITES, json=site(monitoring_station_id=INT64_MAX))
    assert response.status_code == 201
    assert response.json()["monitoring_station_id"] == INT64_MAX


@pytest.mark.parametrize(
    "path",
    [
        "/partner/v1/dealers/12345/sites/99999999999999999999999",
        "/partner/v1/dealers/12345/sites/9223372036854775808",
        "/partner/v1/dealers/12345/sites/1/contacts/99999999999999999999999",
        "/partner/v1/dealers/12345/sites/-1",
    ],
)
def test_ids_past_int64_in_paths_are_404(api: httpx.Client, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert envelope(response)["code"] == "not_found"


def test_a_dealer_id_past_int64_in_a_path_is_403(api: httpx.Client) -> None:
    response = api.get("/partner/v1/dealers/99999999999999999999999/sites")
    assert response.status_code == 403
    assert envelope(response)["code"] == "permission_denied"


def test_deeply_nested_json_is_400_not_500(api: httpx.Client) -> None:
    response = api.post(SITES, content=b"[" * 200_000 + b"]" * 200_000)
    assert response.status_code in (400, 422), response.text
    envelope(response)


@pytest.mark.parametrize(
    "options",
    [["--dealer", str(2**63)], ["--dealer", "0"], ["--dealer", "-5"]],
    ids=["past-int64", "zero", "negative"],
)
def test_a_dealer_option_out_of_range_is_a_clear_error(options: list[str]) -> None:
    result = run_cli("sandbox", "--port", "0", *options)
    assert result.returncode == 2, result.stderr
    assert "--dealer" in result.stderr and "Traceback" not in result.stderr


def test_a_seed_id_past_int64_is_a_clear_error(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"dealers": [{"dealer_id": 1, "sites": [{"site_id": 10**20}]}]}))
    result = run_cli("sandbox", "--port", "0", "--seed", str(seed))
    assert result.returncode == 2
    assert "dealers[0].sites[0].site_id" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("claims", "field"),
    [
        ({"exp": 10**400}, "exp"),
        ({"exp": 2**64}, "exp"),
        ({"exp": int(time.time()) + 10 * 86400}, "exp"),
        ({"iat": 10**400}, "iat"),
        ({"nbf": 10**400}, "nbf"),
        ({"exp": float("inf")}, "exp"),
        ({"iat": float("inf")}, "iat"),
        ({"nbf": float("inf")}, "nbf"),
    ],
    ids=[
        "exp-10e400",
        "exp-2e64",
        "exp-in-ten-days",
        "iat-10e400",
        "nbf-10e400",
        "exp-inf",
        "iat-inf",
        "nbf-inf",
    ],
)
def test_jwt_claims_out_of_range_are_the_documented_400(
    start_sandbox, rsa_key, tmp_path: Path, claims: dict, field: str
) -> None:
    key_file = tmp_path / "public.pem"
    key_file.write_bytes(
        rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    sandbox = start_sandbox(client_public_key=key_file)
    now = int(time.time())
    body = {
        "iss": "sandbox-client",
        "sub": "sandbox-client",
        "aud": sandbox.url + "/",
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 300,
        **claims,
    }
    response = httpx.post(
        f"{sandbox.url}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": jwt.encode(body, rsa_key, algorithm="RS256"),
        },
    )
    assert response.status_code in (400, 401), response.text
    error = envelope(response)
    assert error["code"] in ("invalid_grant", "invalid_client")
    assert field in error["message"] or error["field"] == field
    assert "Traceback" not in response.text


# request bodies


def raw_request(url: str, head: bytes, body: bytes = b"", wait: float = 10.0) -> bytes:
    """Send bytes as they are on a fresh connection; everything the server answers until it
    closes the connection (or `wait` seconds pass)."""
    host, port = re.match(r"http://([\d.]+):(\d+)", url).groups()
    with socket.create_connection((host, int(port)), timeout=wait) as connection:
        connection.sendall(head + body)
        received = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = connection.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        return received


def status_and_body(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def post_head(url: str, token: str, length: int, path: str = SITES) -> bytes:
    host = url.removeprefix("http://")
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_a_body_over_the_limit_is_413_before_it_is_read(start_sandbox) -> None:
    # The sandbox would wait a minute for a body that does not come: a refusal that waited for
    # the rest would get no answer within `raw_request`'s 10 s (or a 408), not a 413. Counted
    # by the answer, not by a wall-clock bound that a loaded machine can exceed.
    sandbox = start_sandbox(body_timeout=60)
    token = get_token(sandbox.url)
    # 500 MB announced, 1 KB sent: the answer comes without waiting for the rest.
    answer = raw_request(sandbox.url, post_head(sandbox.url, token, 500 * 2**20), b"{" * 1024)
    status, body = status_and_body(answer)
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"
    assert "1048576" in body["error"]["message"] or "1 MB" in body["error"]["message"]


@pytest.mark.parametrize("path", [SITES, "/oauth/token"])
def test_a_chunked_body_over_the_limit_is_413(sandbox: SandboxServer, path: str) -> None:
    token = get_token(sandbox.url)

    def chunks():
        for _ in range(3):
            yield b" " * 2**19  # 1.5 MB in all, no Content-Length

    with httpx.Client(base_url=sandbox.url, timeout=10) as client:
        response = client.post(path, content=chunks(), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 413
    assert envelope(response)["code"] == "payload_too_large"


def test_a_body_at_the_limit_is_read(api: httpx.Client) -> None:
    body = json.dumps(site()).encode()
    padded = body[:-1] + b" " * (2**20 - len(body)) + b"}"
    assert len(padded) == 2**20
    response = api.post(SITES, content=padded)
    assert response.status_code == 201


def test_a_body_shorter_than_its_content_length_times_out(start_sandbox) -> None:
    sandbox = start_sandbox(body_timeout=0.5)
    token = get_token(sandbox.url)
    started = time.monotonic()
    answer = raw_request(sandbox.url, post_head(sandbox.url, token, 100), b'{"name": ')
    # It waited for the rest of the body (at least body_timeout: a lower bound no load can
    # break); one that never times out leaves raw_request its 10 s and no answer to read.
    assert time.monotonic() - started > 0.4
    status, body = status_and_body(answer)
    assert status == 408 and body["error"]["code"] == "request_timeout"


def test_the_default_body_timeout_is_a_few_seconds() -> None:
    assert 1 <= SandboxConfig().body_timeout <= 10
    assert SandboxConfig().max_body_bytes == 2**20


def test_the_server_still_serves_after_refusing_bodies(sandbox: SandboxServer) -> None:
    token = get_token(sandbox.url)
    raw_request(sandbox.url, post_head(sandbox.url, token, 10 * 2**20), b"x")
    response = httpx.get(f"{sandbox.url}{SITES}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


# the secret


run_cli = run_in_process  # the messages' tests; the command's process is tested below


def test_the_secret_comes_from_sandbox_client_secret(tmp_path: Path) -> None:
    secret = "env-secret-" + uuid.uuid4().hex
    process = warm.WarmPopen(
        [sys.executable, "-m", "bulk_contacts", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SANDBOX_CLIENT_SECRET": secret},
    )
    try:
        text = "".join(process.stdout.readline() for _ in range(7))
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", text).group(1)
        assert secret not in text and "SANDBOX_CLIENT_SECRET" in text
        assert get_token(url, secret=secret)
        refused = httpx.post(
            f"{url}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "sandbox-client",
                "client_secret": "sandbox-secret",
            },
        )
        assert refused.status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()


def test_the_flag_is_documented_as_for_throwaway_rehearsals() -> None:
    result = run_cli("sandbox", "--help")
    text = " ".join(result.stdout.split())
    assert "SANDBOX_CLIENT_SECRET" in text and "ps" in text
