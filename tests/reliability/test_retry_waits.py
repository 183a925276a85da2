"""`Retry-After: 0`, a missing or a useless one never make a hot loop: every retry waits a
positive backoff. A 429 is "slower", not "no": the client keeps asking past the policy's cap on
attempts, until the time it was given runs out, and then the call is left undone (raised as
`RateLimitedError`, or deferred by a batch), never failed."""

from __future__ import annotations

import logging
import re
from email.utils import formatdate

import httpx
import pytest

from pipelines.providers import (
    ESIMTradeClient,
    PressOneClient,
    RateLimitedError,
    RetryPolicy,
    deadline_in,
)

POLICY = RetryPolicy(max_attempts=5, max_total_seconds=10.0, initial_wait=0.01, max_wait=0.04)
FLOOR = POLICY.initial_wait * (1 - POLICY.jitter)
WAIT = re.compile(r"retrying in ([0-9.]+)s")


class Throttling:
    """Answers every request with 429 and the given Retry-After (None: no header)."""

    def __init__(self, retry_after: str | None) -> None:
        self.retry_after = retry_after
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        headers = {} if self.retry_after is None else {"Retry-After": self.retry_after}
        return httpx.Response(429, json={"message": "Too Many Attempts."}, headers=headers)


def _waits(caplog: pytest.LogCaptureFixture) -> list[float]:
    return [
        float(match.group(1))
        for record in caplog.records
        if (match := WAIT.search(record.getMessage()))
    ]


@pytest.mark.parametrize("retry_after", ["0", None, "", "soon", "-5", "0.0"])
async def test_esimtrade_429_without_a_usable_wait_backs_off_until_the_deadline(
    caplog: pytest.LogCaptureFixture, retry_after: str | None
) -> None:
    server = Throttling(retry_after)
    caplog.set_level(logging.INFO, logger="esim_recon.providers")
    async with ESIMTradeClient(
        "http://esimtrade.test/api/v1",
        "code",
        "key",
        retry=POLICY,
        requests_per_minute=None,
        transport=httpx.MockTransport(server),
    ) as client:
        with pytest.raises(RateLimitedError) as raised:
            await client.sync_order("B1", deadline=deadline_in(1.5))
    assert raised.value.status_code == 429
    # More attempts than the policy allows failures: 429s do not count (the client also paces
    # itself down, so these are fewer than the backoff alone would allow).
    assert len(server.requests) > POLICY.max_attempts
    waits = _waits(caplog)
    assert len(waits) == len(server.requests) - 1
    assert all(wait >= FLOOR > 0 for wait in waits), waits
    assert all(wait <= POLICY.max_wait for wait in waits), waits


async def test_a_usable_retry_after_is_honoured_as_given(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = Throttling("0.2")
    caplog.set_level(logging.INFO, logger="esim_recon.providers")
    async with ESIMTradeClient(
        "http://esimtrade.test/api/v1",
        "code",
        "key",
        retry=RetryPolicy(max_attempts=2, max_total_seconds=10.0, initial_wait=0.01),
        requests_per_minute=None,
        transport=httpx.MockTransport(server),
    ) as client:
        with pytest.raises(RateLimitedError):
            await client.sync_order("B1", deadline=deadline_in(0.7))
    waits = _waits(caplog)
    assert len(server.requests) == len(waits) + 1 >= 3
    assert waits == [0.2] * len(waits)


async def test_a_retry_after_date_in_the_past_is_a_backoff_not_a_hot_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = Throttling(formatdate(0, usegmt=True))  # 1970
    caplog.set_level(logging.INFO, logger="esim_recon.providers")
    async with ESIMTradeClient(
        "http://esimtrade.test/api/v1",
        "code",
        "key",
        retry=POLICY,
        requests_per_minute=None,
        transport=httpx.MockTransport(server),
    ) as client:
        with pytest.raises(RateLimitedError):
            await client.sync_order("B1", deadline=deadline_in(1.5))
    waits = _waits(caplog)
    assert len(server.requests) == len(waits) + 1 > POLICY.max_attempts
    assert waits and all(wait >= FLOOR for wait in waits)


async def test_a_throttled_pressone_token_endpoint_backs_off_and_defers_the_usage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    token_requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            token_requests.append(request)
            return httpx.Response(429, json={"message": "Too Many Attempts."}, headers={})
        raise AssertionError("no API call without a token")

    caplog.set_level(logging.INFO, logger="esim_recon.providers")
    async with PressOneClient(
        "http://pressone.test",
        "client",
        "secret",
        retry=POLICY,
        transport=httpx.MockTransport(handler),
    ) as client:
        stream = client.usage_many(["8944000000000000001"], start_by=deadline_in(1.5))
        results = [result async for result in stream]
    # Not a failure of the ICCID: left for the next run.
    assert results == [] and stream.stats.deferred == ["8944000000000000001"]
    assert len(token_requests) > POLICY.max_attempts
    waits = _waits(caplog)
    assert len(waits) == len(token_requests) - 1
    assert all(wait >= FLOOR for wait in waits), waits
