"""Time is a parameter: the token bucket, the pacer and the retries under an injected clock.

Nothing here sleeps: a `FakeClock` stands for both the clock and the sleep, so each test checks the
waits the code decides on, exactly, in no time.
"""

from __future__ import annotations

import email.utils
import random

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulk_contacts import retries
from bulk_contacts.client import ChektClient
from bulk_contacts.errors import TransportError
from bulk_contacts.ratelimit import Pacer, TokenBucket
from bulk_contacts.retries import RetryPolicy
from bulk_contacts.settings import resolve_settings


class FakeClock:
    """Monotonic and wall time that move only when something sleeps (or the test says so)."""

    def __init__(self, start: float = 1000.0, wall: float = 1_700_000_000.0) -> None:
        self.now = start
        self.wall_start = wall - start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.wall_start + self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


# the token bucket


def test_a_bucket_starts_full_then_gives_tokens_at_its_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, capacity=3, clock=clock.monotonic)
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]
    clock.advance(0.49)
    assert not bucket.try_take()
    clock.advance(0.01)
    assert bucket.try_take()
    clock.advance(100)
    assert bucket.remaining == 3  # never more than its capacity


def test_reserve_queues_callers_fairly() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4, capacity=1, clock=clock.monotonic)
    waits = [bucket.reserve() for _ in range(5)]
    assert waits == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert bucket.seconds_until(1) == pytest.approx(1.25)


@given(
    rate=st.floats(0.5, 100),
    capacity=st.integers(1, 20),
    requests=st.integers(1, 200),
)
def test_a_paced_caller_never_goes_faster_than_rate_and_burst(
    rate: float, capacity: int, requests: int
) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate, capacity, clock.monotonic)
    for _ in range(requests):
        clock.sleep(bucket.reserve())
    elapsed = clock.now - 1000.0
    ideal = max(0.0, (requests - capacity) / rate)
    assert elapsed == pytest.approx(ideal, abs=1e-6)


# the pacer


def test_the_pacers_own_bucket_runs_on_the_injected_clock() -> None:
    clock = FakeClock()
    pacer = Pacer(rate=2, clock=clock.monotonic, sleep=clock.sleep)
    pacer.answered()
    for _ in range(10):
        pacer.wait_turn()
    # a bucket of one token (2/s, a tenth of a second's worth, at least one): nine waits of 0.5 s
    assert clock.now - 1000.0 == pytest.approx(4.5)
    assert clock.sleeps == pytest.approx([0.5] * 9)


def test_the_pacer_sleeps_through_the_testing_switch(monkeypatch) -> None:
    """Without an injected sleep, the pacer waits through `retries.sleep`, which
    `retries.set_testing()` turns off: a test of a 429 never waits for real."""
    slept: list[float] = []
    monkeypatch.setattr(retries, "sleep", slept.append)
    pacer = Pacer()
    pacer.answered()
    pacer.pause(7)
    waited = pacer.wait_turn()
    assert 6 < waited <= 7 and slept == [waited]


def test_a_server_pause_holds_every_worker_until_it_ends() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock.monotonic, sleep=clock.sleep, wall=clock.wall)
    pacer.answered()
    pacer.observe("600", "0", str(clock.wall() + 3))  # empty until 3 s from now
    assert pacer.wait_turn() == pytest.approx(3)
    assert pacer.wait_turn() < 0.2  # after the reset: the adopted pace (10/s) only


def test_the_pacer_adopts_an_advertised_limit_slower_than_its_own() -> None:
    clock = FakeClock()
    pacer = Pacer(rate=100, clock=clock.monotonic, sleep=clock.sleep, wall=clock.wall)
    pacer.answered()
    pacer.observe("60", "59", None)  # one a second
    for _ in range(4):
        pacer.wait_turn()
    assert clock.now - 1000.0 == pytest.approx(3)
    pacer.observe("6000", "5999", None)  # faster than ours: ours stays
    assert pacer.bucket is not None and pacer.bucket.rate == 1


def test_a_reset_in_the_past_or_absurdly_far_is_ignored() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock.monotonic, sleep=clock.sleep, wall=clock.wall)
    pacer.answered()
    for reset in (clock.wall() - 5, clock.wall() + 7200, "soon"):
        pacer.observe(None, "0", str(reset))
    assert pacer.wait_turn() == 0


# retries


def test_backoff_is_exponential_with_jitter_in_the_upper_half() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=30, jitter=random.Random(4))
    for attempt in range(1, 10):
        ceiling = min(30, 0.5 * 2 ** (attempt - 1))
        assert ceiling / 2 <= policy.backoff(attempt) <= ceiling
    assert policy.delay(3, retry_after=12) == 12
    assert policy.delay(3, retry_after=10_000) == 120  # capped at four times max_delay


def test_the_client_retries_on_its_injected_clock() -> None:
    """A transport failure five times: the waits between the attempts are the policy's, taken
    on the client's clock, and the sixth attempt is the last."""
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=6, base_delay=1, max_delay=8, jitter=random.Random(1))
    twin = RetryPolicy(max_attempts=6, base_delay=1, max_delay=8, jitter=random.Random(1))
    expected = [twin.backoff(n) for n in range(1, 6)]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        raise httpx.ConnectError("refused")

    settings = resolve_settings(
        api_url="https://api.test",
        env={"CHEKT_CLIENT_ID": "c", "CHEKT_CLIENT_SECRET": "s"},
        require_dealer=False,
    )
    client = ChektClient(
        settings,
        transport=httpx.MockTransport(handler),
        retry=policy,
        clock=clock.monotonic,
        sleep=clock.sleep,
    )
    with client, pytest.raises(TransportError) as caught:
        client.list_sites(1)
    assert caught.value.attempts == 6
    assert clock.sleeps == pytest.approx(expected)


def test_a_429_with_retry_after_waits_once_on_the_clients_clock() -> None:
    """Retry-After as an HTTP date: the client waits that long once (the pause every worker
    shares and the retry's own wait are the same seconds, not two waits)."""
    clock = FakeClock()
    answers = iter(
        [
            httpx.Response(
                429,
                headers={"Retry-After": email.utils.formatdate(clock.wall() + 7, usegmt=True)},
                json={"error": {"code": "rate_limited"}},
            ),
            httpx.Response(200, json=[]),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return next(answers)

    settings = resolve_settings(
        api_url="https://api.test",
        env={"CHEKT_CLIENT_ID": "c", "CHEKT_CLIENT_SECRET": "s"},
        require_dealer=False,
    )
    client = ChektClient(
        settings,
        transport=httpx.MockTransport(handler),
        clock=clock.monotonic,
        sleep=clock.sleep,
        wall=clock.wall,
    )
    with client:
        assert client.list_sites(1) == []
    assert sum(clock.sleeps) == pytest.approx(7, abs=1)
