"""Injected faults: each one really happens on the wire, and a seed makes them reproducible."""

from __future__ import annotations

import time

import httpx
import pytest

from bulk_contacts.errors import SandboxError
from bulk_contacts.sandbox import Faults
from bulk_contacts.sandbox.faults import FaultPlan

from .conftest import get_token

SITES = "/partner/v1/dealers/12345/sites"
# What a client sees when the socket closes with no answer: EOF, or a reset.
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError)
JOHN = {"external_contact_id": "1", "first_name": "John", "last_name": "Doe"}


@pytest.fixture
def faulty(start_sandbox):
    """A sandbox with the given faults and one site, and a raw client for it."""
    clients: list[httpx.Client] = []

    def start(**faults):
        server = start_sandbox(faults=Faults(**faults))
        server.store.create_site(12345, {"external_site_id": "a", "name": "A", "timezone": "UTC"})
        token = get_token(server.url)
        clients.append(
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})
        )
        return server, clients[-1]

    yield start
    for client in clients:
        client.close()


def stored_contacts(server) -> int:
    return server.store.db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0]


def test_error_rate_answers_500_or_503_and_does_nothing(faulty) -> None:
    server, client = faulty(error_rate=1.0, seed=1)
    statuses = {client.post(f"{SITES}/1/contacts", json=JOHN).status_code for _ in range(20)}
    assert statuses == {500, 503}
    assert stored_contacts(server) == 0


def test_drop_rate_closes_the_connection_without_an_answer(faulty) -> None:
    server, client = faulty(drop_rate=1.0)
    with pytest.raises(DROPPED):
        client.post(f"{SITES}/1/contacts", json=JOHN)
    with pytest.raises(DROPPED):
        client.get(SITES)
    assert stored_contacts(server) == 0


def test_ack_loss_commits_the_write_then_fails_the_answer(faulty) -> None:
    server, client = faulty(ack_loss_rate=1.0, seed=3)
    outcomes = []
    for n in range(10):
        try:
            outcomes.append(
                client.post(
                    f"{SITES}/1/contacts", json={**JOHN, "external_contact_id": str(n)}
                ).status_code
            )
        except DROPPED:
            outcomes.append("dropped")
    assert set(outcomes) == {500, "dropped"}
    assert stored_contacts(server) == 10
    assert client.get(f"{SITES}/1/contacts").status_code == 200  # reads are not affected


def test_retrying_an_ack_lost_create_with_its_key_replays_the_committed_contact(faulty) -> None:
    server, client = faulty(ack_loss_rate=0.5, seed=7)
    answers = []
    for _ in range(20):  # a retry loop, bounded
        try:
            answers.append(
                client.post(f"{SITES}/1/contacts", json=JOHN, headers={"Idempotency-Key": "row-7"})
            )
        except DROPPED:
            answers.append(None)
        if answers[-1] is not None and answers[-1].status_code == 201:
            break
    assert answers[0] is None or answers[0].status_code == 500  # the seed loses the first answer
    assert answers[-1].status_code == 201
    assert stored_contacts(server) == 1
    stored_id = server.store.db.execute("SELECT contact_id FROM contacts").fetchone()[0]
    assert answers[-1].json()["contact_id"] == stored_id


def test_latency_and_jitter_delay_every_partner_request(faulty) -> None:
    """The delay drawn is latency plus jitter (exactly: the seed's first draw, as a twin plan of
    the same seed draws it), and the request waits at least that. No upper wall-clock bound: on
    a loaded machine the answer's own time is anything; the draw bounds the delay."""
    _, client = faulty(latency_ms=150, jitter_ms=50, seed=1)
    delay = FaultPlan(Faults(latency_ms=150, jitter_ms=50, seed=1)).draw(False).delay
    assert 0.15 <= delay <= 0.2
    started = time.perf_counter()
    client.get(SITES)  # the token request before it draws nothing: this is the first draw
    assert time.perf_counter() - started >= delay


def test_a_fault_seed_reproduces_the_same_faults(faulty) -> None:
    def statuses() -> list[int]:
        _, client = faulty(error_rate=0.5, seed=42)
        return [client.get(SITES).status_code for _ in range(30)]

    first, second = statuses(), statuses()
    assert first == second
    assert 200 in first and (500 in first or 503 in first)


def test_faults_can_be_changed_while_the_sandbox_runs(faulty) -> None:
    """`set_faults`: a test slows or breaks the sandbox only for the part that needs it."""
    server, client = faulty()
    assert client.get(SITES).status_code == 200
    server.set_faults(Faults(error_rate=1.0, seed=1))
    assert {client.get(SITES).status_code for _ in range(5)} <= {500, 503}
    server.set_faults(Faults())
    assert client.get(SITES).status_code == 200
    server.stop()
    with pytest.raises(SandboxError):
        server.set_faults(Faults())


# a test's hold on the writes: a run stopped at a point the test knows, not at a time


def test_a_hold_lets_the_first_writes_through_and_holds_the_next_until_released(faulty) -> None:
    import threading

    server, client = faulty()
    hold = server.hold_writes(after=2)
    statuses: list[int] = []

    def create(n: int) -> None:
        statuses.append(
            client.post(
                f"{SITES}/1/contacts", json={**JOHN, "external_contact_id": str(n)}
            ).status_code
        )

    create(1), create(2)  # the first two pass
    assert hold.received == 2 and hold.held == 0 and stored_contacts(server) == 2
    assert client.get(SITES).status_code == 200  # reads are not held by a hold on the writes
    writers = [threading.Thread(target=create, args=(n,)) for n in (3, 4)]
    for writer in writers:
        writer.start()
    hold.wait_held(2)  # both wait at the door, nothing of theirs done
    assert hold.received == 4 and stored_contacts(server) == 2 and statuses == [201, 201]
    hold.release()
    for writer in writers:
        writer.join(timeout=10)
    assert statuses == [201] * 4 and stored_contacts(server) == 4
    create(5)  # after the release, nothing is held
    assert hold.held == 2 and stored_contacts(server) == 5


def test_a_hold_not_met_in_time_says_what_it_saw_and_stop_releases_the_held(faulty) -> None:
    import threading

    server, client = faulty()
    hold = server.hold_writes()
    with pytest.raises(SandboxError, match="1 requests to be held: 0 received, 0 held"):
        hold.wait_held(1, timeout=0.05)
    answers: list[int] = []
    writer = threading.Thread(
        target=lambda: answers.append(client.post(f"{SITES}/1/contacts", json=JOHN).status_code)
    )
    writer.start()
    hold.wait_held(1)
    server.stop()  # the held write goes on and is answered before the sandbox stops
    writer.join(timeout=10)
    assert answers == [201]


def test_wait_idle_returns_once_the_writes_a_gone_client_left_are_answered(faulty) -> None:
    """As after a kill -9: the client sent its write and closed the connection unanswered."""
    import json
    import socket
    from urllib.parse import urlsplit

    server, client = faulty()
    hold = server.hold_writes()
    body = json.dumps(JOHN).encode()
    token = client.headers["Authorization"]
    request = (
        f"POST {SITES}/1/contacts HTTP/1.1\r\nHost: sandbox\r\nAuthorization: {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    url = urlsplit(server.url)
    with socket.create_connection((url.hostname, url.port)) as gone:
        gone.sendall(request + body)
        hold.wait_held(1)
    with pytest.raises(SandboxError, match="still busy"):
        server.wait_idle(timeout=0.05)  # the write is held: the sandbox is still answering it
    assert stored_contacts(server) == 0
    hold.release()
    server.wait_idle()
    assert stored_contacts(server) == 1


def test_a_hold_on_the_reads_holds_reads_only(faulty) -> None:
    import threading

    server, client = faulty()
    hold = server.hold_reads(after=1)
    assert client.get(SITES).status_code == 200
    assert client.post(f"{SITES}/1/contacts", json=JOHN).status_code == 201
    answers: list[int] = []
    reader = threading.Thread(target=lambda: answers.append(client.get(SITES).status_code))
    reader.start()
    hold.wait_held(1)
    assert answers == [] and hold.received == 2
    hold.release()
    reader.join(timeout=10)
    assert answers == [200]
