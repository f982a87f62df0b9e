"""The sandbox as a program: JWT assertions, seeds, persistence, the command line, the reference's
cURL examples."""

from __future__ import annotations

import json
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

REFERENCE = Path(__file__).parent / "data" / "contacts-api-reference.txt"
SITES = "/partner/v1/dealers/12345/sites"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


# JWT assertions


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def assertion(key, audience: str, **claims) -> str:
    now = int(time.time())
    body = {
        "iss": "sandbox-client",
        "sub": "sandbox-client",
        "aud": audience,
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 300,
        **claims,
    }
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


def ask_with_assertion(url: str, signed: str) -> httpx.Response:
    return httpx.post(
        f"{url}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": signed,
            "audience": "https://api.chekt.com",
        },
    )


def test_jwt_assertion_gets_a_token(start_sandbox, rsa_key, tmp_path) -> None:
    server = start_sandbox(client_public_key=public_pem(rsa_key, tmp_path / "pub.pem"))
    for audience in (server.url, server.url + "/", server.url + "/oauth/token"):
        response = ask_with_assertion(server.url, assertion(rsa_key, audience))
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        listed = httpx.get(server.url + SITES, headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200


def test_jwt_assertion_failures(start_sandbox, rsa_key, tmp_path) -> None:
    server = start_sandbox(client_public_key=public_pem(rsa_key, tmp_path / "pub.pem"))
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    reused = assertion(rsa_key, server.url)
    assert ask_with_assertion(server.url, reused).status_code == 200
    cases = [
        (reused, 400, "invalid_grant"),
        (assertion(rsa_key, "https://elsewhere.example/"), 400, "invalid_grant"),
        (assertion(rsa_key, server.url, exp=int(time.time()) - 10), 400, "invalid_grant"),
        (assertion(rsa_key, server.url, iss="intruder"), 401, "invalid_client"),
        (assertion(rsa_key, server.url, sub="intruder"), 401, "invalid_client"),
        (assertion(other_key, server.url), 401, "invalid_client"),
        ("not-a-jwt", 401, "invalid_client"),
    ]
    no_jti = jwt.encode(
        {
            "iss": "sandbox-client",
            "sub": "sandbox-client",
            "aud": server.url,
            "exp": int(time.time()) + 60,
        },
        rsa_key,
        algorithm="RS256",
    )
    cases.append((no_jti, 400, "invalid_grant"))
    for signed, status, code in cases:
        response = ask_with_assertion(server.url, signed)
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code


def test_jwt_assertions_need_a_public_key(sandbox, rsa_key) -> None:
    response = ask_with_assertion(sandbox.url, assertion(rsa_key, sandbox.url))
    assert response.status_code == 401
    assert "--client-public-key" in response.json()["error"]["message"]


# seeds and persistence


def write_seed(path: Path, payload: object) -> Path:
    path.write_text(json.dumps(payload))
    return path


SEED = {
    "dealers": [
        {
            "dealer_id": 12345,
            "sites": [
                {
                    "site_id": 101,
                    "external_site_id": "ext-A",
                    "name": "Site A",
                    "account_number": "ACCT-A",
                    "timezone": "America/New_York",
                    "contacts": [
                        {
                            "external_contact_id": "a1",
                            "first_name": "John",
                            "last_name": "Doe",
                            "phone_number": "+12025550143",
                            "email": "john@example.com",
                        },
                        {"first_name": "Walk", "last_name": "In"},
                    ],
                },
                {
                    "name": "Site B",
                    "contacts": [
                        {
                            "contact_id": 50,
                            "external_contact_id": "b1",
                            "first_name": "Ann",
                            "last_name": "Lee",
                        }
                    ],
                },
            ],
        }
    ]
}


def test_seed_keeps_given_ids_and_assigns_missing_ones(start_sandbox, tmp_path) -> None:
    server = start_sandbox(seed=write_seed(tmp_path / "seed.json", SEED))
    headers = {"Authorization": f"Bearer {get_token(server.url)}"}
    sites = httpx.get(server.url + SITES, headers=headers).json()
    assert [s["site_id"] for s in sites] == [101, 102]
    assert sites[0]["account_number"] == "ACCT-A"
    contacts = httpx.get(f"{server.url}{SITES}/101/contacts", headers=headers).json()
    assert [c["external_contact_id"] for c in contacts] == ["a1", None]
    assert contacts[0]["phone_number"] == "+12025550143"
    b_contacts = httpx.get(f"{server.url}{SITES}/102/contacts", headers=headers).json()
    assert [c["contact_id"] for c in b_contacts] == [50]


def test_state_and_tokens_survive_a_restart_on_the_same_db(tmp_path) -> None:
    db = tmp_path / "sandbox.db"
    with SandboxServer(SandboxConfig(port=0, db=db)) as first:
        token = get_token(first.url)
        headers = {"Authorization": f"Bearer {token}"}
        site = httpx.post(
            first.url + SITES,
            headers=headers,
            json={"external_site_id": "x", "name": "X", "timezone": "UTC"},
        ).json()
        contact = httpx.post(
            f"{first.url}{SITES}/{site['site_id']}/contacts",
            headers=headers,
            json={"external_contact_id": "1", "first_name": "A", "last_name": "B"},
        ).json()
    with SandboxServer(SandboxConfig(port=0, db=db)) as second:
        listed = httpx.get(f"{second.url}{SITES}/{site['site_id']}/contacts", headers=headers)
        assert listed.status_code == 200
        assert listed.json() == [contact]
    assert token.encode() not in db.read_bytes()


def test_stopping_answers_the_request_in_flight_and_waits_no_longer(monkeypatch) -> None:
    """A sandbox stopped while it answers a request (here one it holds) first finishes that
    answer; one with only idle kept-alive connections stops at once, not after uvicorn's fixed
    pause of 0.1 s nor at its main loop's next tick (the suite starts and stops hundreds).
    Seen as the waits the shutdown asks for and as a tick of a minute it must not wait out,
    not as the time a stop took."""
    import asyncio
    import threading

    from bulk_contacts.sandbox.server import _Uvicorn

    server = SandboxServer(SandboxConfig(port=0)).start()
    token = get_token(server.url)
    hold = server.hold_reads()
    answered: list[int] = []
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as client:

        def list_sites() -> None:
            answered.append(client.get(server.url + SITES).status_code)

        asking = threading.Thread(target=list_sites)
        asking.start()
        hold.wait_held(1)  # the request is in the sandbox, waiting
        server.stop()
        asking.join(timeout=10)
    assert answered == [200]
    monkeypatch.setattr(_Uvicorn, "tick", 60.0)  # woken by the stop, or a minute's wait
    asked: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float, *args: object, **kwargs: object) -> object:
        asked.append(delay)
        return await real_sleep(delay, *args, **kwargs)

    with (
        SandboxServer(SandboxConfig(port=0)) as idle,
        httpx.Client() as client,
    ):
        client.get(idle.url + "/openapi.json")  # a kept-alive connection, idle
        serving = idle._thread
        assert serving is not None
        monkeypatch.setattr(asyncio, "sleep", sleep)
        idle.stop()  # waits up to 10 s for the server's thread
        monkeypatch.setattr(asyncio, "sleep", real_sleep)
    assert not serving.is_alive()  # it stopped at once, not at the next tick
    assert not [delay for delay in asked if delay >= 0.1], asked  # and paused for nothing


# the command line


run_cli = run_in_process  # the messages' tests; the command's process is tested below


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON at line 1"),
        (
            '{"dealers": [{"dealer_id": 1, "sites": [{"contacts": [{"first_name": "A"}]}]}]}',
            "dealers[0].sites[0].contacts[0].last_name",
        ),
        (
            '{"dealers": [{"dealer_id": 1, "sites": [{"site_id": 1}, {"site_id": 1}]}]}',
            "id given twice",
        ),
        ('{"sites": []}', "dealers"),
    ],
)
def test_a_bad_seed_file_is_a_clear_error(tmp_path, content: str, message: str) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(content)
    result = run_cli("sandbox", "--port", "0", "--seed", str(seed))
    assert result.returncode == 2
    assert str(seed) in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_seed_file_is_a_clear_error(tmp_path) -> None:
    result = run_cli("sandbox", "--port", "0", "--seed", str(tmp_path / "none.json"))
    assert result.returncode == 2
    assert "cannot be read" in result.stderr and "Traceback" not in result.stderr


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("sandbox", "--port", str(port))
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_command_prints_its_url_client_and_dealers_then_serves(tmp_path) -> None:
    process = warm.WarmPopen(
        [
            sys.executable,
            "-m",
            "bulk_contacts",
            "sandbox",
            "--port",
            "0",
            "--dealer",
            "7",
            "--dealer",
            "8",
            "--client-secret",
            "s3cr3t-value",
            "--db",
            str(tmp_path / "x.db"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [process.stdout.readline() for _ in range(7)]
        text = "".join(lines)
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", text).group(1)
        assert "sandbox-client" in text and "7, 8" in text
        assert "s3cr3t-value" not in text
        token = get_token(url, secret="s3cr3t-value")
        response = httpx.get(
            f"{url}/partner/v1/dealers/8/sites", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()


# the reference's own examples


def curl_examples() -> list[str]:
    text = REFERENCE.read_text()
    block = text[text.index("cURL") : text.index("JavaScript")]
    commands = re.findall(r"^curl .*?(?=\n\n|\n#|\Z)", block, flags=re.S | re.M)
    return [command.replace("\\\n", " ") for command in commands]


def test_the_references_curl_examples_work_against_the_sandbox(start_sandbox, tmp_path) -> None:
    seed = write_seed(
        tmp_path / "seed.json",
        {
            "dealers": [
                {"dealer_id": 12345, "sites": [{"site_id": 1, "name": "Site 1", "timezone": "UTC"}]}
            ]
        },
    )
    server = start_sandbox(seed=seed)
    token = get_token(server.url)
    commands = curl_examples()
    assert len(commands) == 2
    outputs = []
    for command in commands:
        command = command.replace("https://api.chekt.com", server.url)
        command = command.replace("YOUR_ACCESS_TOKEN", token)
        result = subprocess.run(
            command + " --silent --show-error --fail-with-body",
            shell=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr + result.stdout
        outputs.append(json.loads(result.stdout))
    created, listed = outputs
    assert created["external_contact_id"] == "1234" and created["first_name"] == "John"
    assert listed == [created]


# many sandboxes in one process


def test_sandboxes_in_one_process_share_the_routes_but_each_answers_from_its_own_store(
    start_sandbox,
) -> None:
    """The FastAPI routes are built once per process; a request still reaches the handlers, the
    store and the credentials of the sandbox it came to, also when both serve at once."""
    from concurrent.futures import ThreadPoolExecutor

    one = start_sandbox(dealers=(12345,))
    two = start_sandbox(dealers=(777,), client_id="other", client_secret="other-secret")
    assert one._frontdoor.app.app is two._frontdoor.app.app  # Frontdoor > Gate > shared routes
    one_token = get_token(one.url)
    two_token = get_token(two.url, "other", "other-secret")
    assert (
        httpx.post(
            f"{two.url}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "sandbox-client",
                "client_secret": "sandbox-secret",
            },
        ).status_code
        == 401
    )

    def create(n: int) -> tuple[int, int]:
        server, token, dealer = (one, one_token, 12345) if n % 2 else (two, two_token, 777)
        answer = httpx.post(
            f"{server.url}/partner/v1/dealers/{dealer}/sites",
            json={"external_site_id": f"s{n}", "name": f"Site {n}", "timezone": "UTC"},
            headers={"Authorization": f"Bearer {token}"},
        )
        return n, answer.status_code

    with ThreadPoolExecutor(8) as pool:
        assert {status for _, status in pool.map(create, range(16))} == {201}
    for server, token, dealer, parity in ((one, one_token, 12345, 1), (two, two_token, 777, 0)):
        sites = httpx.get(
            f"{server.url}/partner/v1/dealers/{dealer}/sites",
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        names = sorted(int(site["name"].split()[1]) for site in sites)
        assert names == [n for n in range(16) if n % 2 == parity]
    wrong_dealer = httpx.get(
        f"{one.url}/partner/v1/dealers/777/sites", headers={"Authorization": f"Bearer {one_token}"}
    )
    assert wrong_dealer.status_code in (403, 404)
