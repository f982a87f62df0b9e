"""The API client against the sandbox over 127.0.0.1, under every fault the sandbox injects."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest

from bulk_contacts import retries
from bulk_contacts.client import ChektClient
from bulk_contacts.errors import AuthError, NotFound, PermissionDenied, Rejected
from bulk_contacts.models import Contact, NewContact, Site
from bulk_contacts.runlog import RunLog
from bulk_contacts.sandbox import Faults
from bulk_contacts.settings import resolve_settings

DEALER = 12345


@pytest.fixture(autouse=True)
def no_backoff_sleeps():
    retries.set_testing(True)
    yield
    retries.set_testing(False)


def settings_for(url: str, **env: str):
    base = {"CHEKT_CLIENT_ID": "sandbox-client", "CHEKT_CLIENT_SECRET": "sandbox-secret"}
    return resolve_settings(api_url=url, dealer=DEALER, env={**base, **env})


@pytest.fixture
def connect(start_sandbox):
    """`connect(**sandbox_options)` -> (sandbox with one site, a client for it)."""
    clients: list[ChektClient] = []

    def start(client_options: dict | None = None, **options):
        server = start_sandbox(**options)
        server.store.create_site(DEALER, {"external_site_id": "s", "name": "S", "timezone": "UTC"})
        clients.append(ChektClient(settings_for(server.url), **(client_options or {})))
        return server, clients[-1]

    yield start
    for client in clients:
        client.close()


def person(n: int, **extra) -> NewContact:
    return NewContact(
        external_contact_id=f"row-{n}", first_name="Ann", last_name=f"Lee {n}", **extra
    )


def create_many(client: ChektClient, count: int, site: int = 1) -> list:
    with ThreadPoolExecutor(client.concurrency) as pool:
        return list(
            pool.map(lambda n: client.create_contact(DEALER, site, person(n)), range(count))
        )


def stored(server) -> list[tuple]:
    """(external id, how many contacts carry it), read straight from the sandbox's database."""
    rows = server.store.db.execute(
        "SELECT external_contact_id, COUNT(*) FROM contacts GROUP BY external_contact_id"
    )
    return [tuple(row) for row in rows]


def test_operations_return_typed_values(connect) -> None:
    _, client = connect()
    sites = client.list_sites(DEALER)
    assert sites == [
        Site(
            site_id=1,
            name="S",
            external_site_id="s",
            timezone="UTC",
            created_at=sites[0].created_at,
        )
    ]
    result = client.create_contact(DEALER, 1, person(1, phone_number="+12025550143"))
    created = result.contact
    assert isinstance(created, Contact) and created.contact_id > 0
    assert created.phone_number == "+12025550143" and created.email is None
    assert result.exchange.http_status == 201 and result.exchange.trace_id
    assert client.get_contact(DEALER, 1, created.contact_id) == created
    updated = client.update_contact(DEALER, 1, created.contact_id, {"email": "a@b.example"})
    assert updated.contact == Contact(**{**created.__dict__, "email": "a@b.example"})
    assert client.list_contacts(DEALER, 1) == [updated.contact]
    deleted = client.delete_contact(DEALER, 1, created.contact_id)
    assert deleted.contact is None and deleted.exchange.http_status == 204
    with pytest.raises(NotFound) as caught:
        client.get_contact(DEALER, 1, created.contact_id)
    assert caught.value.status == 404 and caught.value.request_id.startswith("req_")


def test_client_errors_are_not_retried_and_name_the_field(connect) -> None:
    _, client = connect()
    with pytest.raises(Rejected) as caught:
        client.update_contact(DEALER, 1, 1, {"first_name": ""})
    assert caught.value.attempts == 1  # a 404 would do too: here the body is checked first
    contact = client.create_contact(DEALER, 1, person(1)).contact
    with pytest.raises(Rejected) as caught:
        client.update_contact(DEALER, 1, contact.contact_id, {"first_name": ""})
    assert caught.value.field == "first_name" and caught.value.attempts == 1
    with pytest.raises(PermissionDenied):
        client.list_sites(999)


def test_error_and_drop_faults_are_retried_to_exactly_one_contact_each(connect) -> None:
    server, client = connect(faults=Faults(error_rate=0.2, drop_rate=0.1, seed=11))
    results = create_many(client, 120)
    assert len(results) == 120
    assert sorted(stored(server)) == sorted((f"row-{n}", 1) for n in range(120))
    assert max(r.exchange.attempts for r in results) > 1


def test_500_creates_under_10_percent_ack_loss_make_exactly_500_contacts(connect) -> None:
    server, client = connect(faults=Faults(ack_loss_rate=0.1, seed=5))
    results = create_many(client, 500)
    rows = stored(server)
    assert len(rows) == 500 and all(count == 1 for _, count in rows)
    ids = {r.contact.contact_id for r in results}
    assert len(ids) == 500
    assert ids == {row[0] for row in server.store.db.execute("SELECT contact_id FROM contacts")}
    assert any(r.exchange.recovered or r.exchange.note == "replayed" for r in results)


class KeyDroppingTransport(httpx.HTTPTransport):
    """A server that ignores Idempotency-Key, as a proxy that strips it would make it."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.headers.pop("Idempotency-Key", None)
        return super().handle_request(request)


def test_lost_answers_never_duplicate_even_when_the_server_ignores_the_key(start_sandbox) -> None:
    server = start_sandbox(faults=Faults(ack_loss_rate=0.3, seed=9))
    server.store.create_site(DEALER, {"external_site_id": "s", "name": "S", "timezone": "UTC"})
    with ChektClient(settings_for(server.url), transport=KeyDroppingTransport()) as client:
        results = create_many(client, 100)
    rows = stored(server)
    assert len(rows) == 100 and all(count == 1 for _, count in rows)
    assert sum(r.exchange.recovered for r in results) > 10


def test_a_delete_whose_answer_was_lost_is_done_not_failed(connect) -> None:
    server, client = connect(faults=Faults(ack_loss_rate=1.0, seed=1))
    server.store.create_contact(
        1, {"external_contact_id": "x", "first_name": "A", "last_name": "B"}
    )
    result = client.delete_contact(DEALER, 1, 1)
    assert result.exchange.recovered
    assert stored(server) == []


class VirtualTime:
    """One clock for the client's pacing and the sandbox's limit, that moves only when every
    worker at work is asleep: then to the earliest wake-up. A request goes out at exactly the
    moment its pacing gave it, and the sandbox's bucket counts it at that moment, however slow
    the machine (real time would let a stalled worker's reserved turns pile up and go at once)."""

    def __init__(self, start: float = 1000.0, wall: float = 1_700_000_000.0) -> None:
        self.now, self.wall_offset = start, wall - start
        self.started = start
        self.sleeps: list[float] = []
        self._working = self._sleeping = 0
        self._wakes: list[float] = []
        self._changed = threading.Condition()

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.wall_offset + self.now

    def sleep(self, seconds: float) -> None:
        with self._changed:
            wake = self.now + seconds
            self.sleeps.append(seconds)
            self._wakes.append(wake)
            self._sleeping += 1
            self._advance_if_idle()
            while self.now < wake:
                self._changed.wait(timeout=1)
            self._sleeping -= 1
            self._wakes.remove(wake)

    @contextmanager
    def working(self) -> Iterator[None]:
        with self._changed:
            self._working += 1
        try:
            yield
        finally:
            with self._changed:
                self._working -= 1
                self._advance_if_idle()

    def _advance_if_idle(self) -> None:
        if self._wakes and self._sleeping >= self._working:
            self.now = max(self.now, min(self._wakes))
            self._changed.notify_all()


def test_429_bursts_are_paced_not_stormed(connect, tmp_path) -> None:
    """32 workers against a limit of 50/s with a burst of 5: the client learns the limit from
    the first answer and paces every worker to it, so no request meets a 429. The pacing and the
    sandbox's bucket share one virtual clock (`VirtualTime`): the count is the pacer's, not the
    machine's load (on real time a stalled worker's turns went at once: 5 and 12 429s)."""
    clock = VirtualTime()
    log = tmp_path / "requests.jsonl"
    server, client = connect(
        rate_limit=3000,
        burst=5,
        request_log=log,
        limit_clock=clock.monotonic,
        limit_wall=clock.wall,
        client_options={
            "concurrency": 32,
            "clock": clock.monotonic,
            "sleep": clock.sleep,
            "wall": clock.wall,
        },
    )

    def create(n: int) -> None:
        with clock.working():
            client.create_contact(DEALER, 1, person(n))

    with ThreadPoolExecutor(client.concurrency) as pool:
        list(pool.map(create, range(60)))
    assert len(stored(server)) == 60
    deadline = time.monotonic() + 10  # the sandbox logs a request just after it has answered it
    while len(log.read_text().splitlines()) < 61 and time.monotonic() < deadline:
        time.sleep(0.01)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    statuses = [e["status"] for e in entries if e["path"] != "/oauth/token"]
    assert statuses.count(429) == 0 and len(statuses) == 60
    assert client.pacer.bucket is not None and client.pacer.bucket.rate == 50  # adopted, no slower
    # the probe, the adopted bucket's one token at once, then 58 turns a fiftieth of a second
    # apart: paced to the limit, not merely slowed
    assert clock.now - clock.started == pytest.approx(58 / 50)


def test_a_token_that_expires_mid_run_is_refreshed(connect, tmp_path) -> None:
    """The server lets every token expire between two batches: the workers' 401s lead to one
    refresh, and every contact is made."""
    log = tmp_path / "requests.jsonl"
    server, client = connect(request_log=log, client_options={"concurrency": 4})
    create_many(client, 20)
    server.store.db.execute("UPDATE tokens SET expires_at = 0")  # expired, server-side
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda n: client.create_contact(DEALER, 1, person(n)), range(20, 40)))
    assert len(stored(server)) == 40
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    token_requests = [e for e in entries if e["path"] == "/oauth/token"]
    assert len(token_requests) == 2
    assert len([e for e in entries if e["status"] == 401]) <= 4  # at most one per worker


def test_a_token_is_renewed_before_it_expires(connect, tmp_path) -> None:
    """On the client's clock: past the token's lifetime less the margin, the next request gets
    a new token first, without meeting a 401."""
    log = tmp_path / "requests.jsonl"
    now = [1000.0]
    _, client = connect(token_ttl=600, request_log=log, client_options={"clock": lambda: now[0]})
    client.create_contact(DEALER, 1, person(1))
    now[0] += 539  # 600 s less a tenth: still good
    client.create_contact(DEALER, 1, person(2))
    now[0] += 2
    client.create_contact(DEALER, 1, person(3))
    deadline = time.monotonic() + 5  # the sandbox logs a request once it has answered it
    while len(log.read_text().splitlines()) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["path"] == "/oauth/token" for e in entries] == [True, False, False, True, False]
    assert all(e["status"] != 401 for e in entries)


def test_jwt_assertion_credentials(start_sandbox, tmp_path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / "key.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = tmp_path / "pub.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    log = tmp_path / "requests.jsonl"
    server = start_sandbox(client_public_key=public, request_log=log)
    settings = resolve_settings(
        api_url=server.url,
        dealer=DEALER,
        env={"CHEKT_CLIENT_ID": "sandbox-client", "CHEKT_PRIVATE_KEY_FILE": str(private)},
    )
    now = [1000.0]
    with ChektClient(settings, clock=lambda: now[0]) as client:
        assert client.list_sites(DEALER) == []
        now[0] += 3600  # the token has expired: a fresh assertion (new jti) gets another
        assert client.list_sites(DEALER) == []
    paths = [json.loads(line)["path"] for line in log.read_text().splitlines()]
    assert paths.count("/oauth/token") == 2


def test_wrong_secret_is_an_auth_error_naming_the_variables(connect, start_sandbox) -> None:
    server = start_sandbox()
    settings = resolve_settings(
        api_url=server.url,
        dealer=DEALER,
        env={"CHEKT_CLIENT_ID": "sandbox-client", "CHEKT_CLIENT_SECRET": "Wr0ng-Zebra-Secret-42"},
    )
    with ChektClient(settings) as client, pytest.raises(AuthError) as caught:
        client.list_sites(DEALER)
    assert "CHEKT_CLIENT_SECRET" in str(caught.value)
    assert "invalid_client" in str(caught.value)
    assert caught.value.attempts == 1


def test_the_log_file_has_one_line_per_exchange_and_no_secrets(start_sandbox, tmp_path) -> None:
    secret = "Distinctive-S3cret-Value-9f8e7d"
    server = start_sandbox(client_secret=secret, faults=Faults(error_rate=0.3, seed=2))
    server.store.create_site(DEALER, {"external_site_id": "s", "name": "S", "timezone": "UTC"})
    path = tmp_path / "log.jsonl"
    env = {"CHEKT_CLIENT_ID": "sandbox-client", "CHEKT_CLIENT_SECRET": secret}
    settings = resolve_settings(api_url=server.url, dealer=DEALER, env=env)
    texts = [repr(settings), str(settings), repr(settings.credentials)]
    with RunLog(path) as log, ChektClient(settings, log=log) as client:
        texts.append(repr(client))
        for n in range(10):
            client.create_contact(DEALER, 1, person(n, email="private@example.com"))
        token = client.tokens.current()
        with pytest.raises(NotFound) as caught:
            client.get_contact(DEALER, 1, 999)
        texts += [str(caught.value), repr(caught.value)]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) >= 12
    for line in lines:
        assert {"method", "path", "status", "duration_ms", "attempt", "trace_id"} <= set(line)
    assert any(line["status"] in (500, 503) for line in lines)
    assert all("values" not in line for line in lines)  # contact values only when verbose
    everything = path.read_text() + "".join(texts)
    assert secret not in everything and token not in everything
    assert "private@example.com" not in everything


def test_verbose_log_includes_contact_values(connect, tmp_path) -> None:
    server, _ = connect()
    path = tmp_path / "log.jsonl"
    with RunLog(path, verbose=True) as log, ChektClient(settings_for(server.url), log=log) as c:
        c.create_contact(DEALER, 1, person(1, email="shown@example.com"))
    assert "shown@example.com" in path.read_text()
    assert "sandbox-secret" not in path.read_text()
