"""The reconnect backoff (issue 13 item 4): a quick first retry, jittered delays, never
more than 1.5 s apart while the outage is under a minute, gentler after that; and a
server that drops every login at once is not retried quickly each time."""

from __future__ import annotations

import random

import pytest
import trio
from trio.testing import MockClock
from trio_websocket import WebSocketRequest, serve_websocket

from rtmcall.client import ClientConfig, connect
from rtmcall.client.backoff import Backoff

from .test_resume_seq import accept_login


def schedule(backoff: Backoff, until: float) -> list[float]:
    """Times of the attempts of one outage (a failed attempt taking no time)."""
    at, times = 0.0, []
    while at < until:
        at += backoff.next_delay(at)
        times.append(at)
    return times


@pytest.mark.parametrize("seed", range(20))
def test_a_young_outage_is_tried_at_least_every_1_5_s(seed: int) -> None:
    times = schedule(Backoff(rng=random.Random(seed)), 60.0)
    assert times[0] <= 0.25  # the quick first retry
    gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    assert max(gaps) <= 1.5
    # ... and is not hammered: past the first few, every gap is at least 0.75 s.
    assert min(gaps[5:]) >= 0.75
    assert len(times) <= 5 + 60 / 0.75


@pytest.mark.parametrize("seed", range(20))
def test_a_long_outage_backs_off_to_5_s(seed: int) -> None:
    backoff = Backoff(rng=random.Random(seed))
    schedule(backoff, 60.0)
    later = [backoff.next_delay(61.0 + i) for i in range(20)]
    assert all(2.5 <= d <= 5.0 for d in later)


def test_delays_grow_from_the_base() -> None:
    lowest = Backoff(rng=_Fixed(0.0))  # uniform() at its low end: half of each nominal
    assert [lowest.next_delay(0.0) for _ in range(6)] == [0.0, 0.125, 0.25, 0.5, 0.75, 0.75]
    highest = Backoff(rng=_Fixed(1.0))
    assert [highest.next_delay(0.0) for _ in range(6)] == [0.25, 0.25, 0.5, 1.0, 1.5, 1.5]


def test_jitter_spreads_clients() -> None:
    """A thousand clients of a restarted server do not retry in lockstep."""
    firsts = [Backoff(rng=random.Random(i)).next_delay(0.0) for i in range(1000)]
    assert len({round(x, 3) for x in firsts}) > 200
    assert min(firsts) < 0.05 and max(firsts) > 0.2


def test_the_client_defaults_are_the_backoffs() -> None:
    cfg = ClientConfig()
    assert (
        cfg.reconnect_first_delay,
        cfg.reconnect_delay,
        cfg.reconnect_max_delay,
        cfg.reconnect_patient_after,
        cfg.reconnect_patient_max_delay,
    ) == (0.25, 0.25, 1.5, 60.0, 5.0)


class _Fixed(random.Random):
    """``uniform(a, b)`` always at the same fraction of the way from a to b."""

    def __init__(self, fraction: float) -> None:
        super().__init__(0)
        self.fraction = fraction

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.fraction


async def test_a_server_that_drops_every_login_at_once_is_not_hammered(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    """Logged in, then dropped at once, again and again: the backoff goes on growing
    across those short-lived connections instead of retrying quickly each time; once a
    connection lasted (here 20 s), its drop gets the quick first retry again."""
    logins: list[float] = []
    hold = {"for": 0.0}
    logged_in = [trio.Event()]

    async def handler(request: WebSocketRequest) -> None:
        ws = await accept_login(request, [])
        logins.append(trio.current_time())
        logged_in[0].set()
        logged_in[0] = trio.Event()
        await trio.sleep(hold["for"])
        await ws.aclose()

    server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
    async with connect(f"ws://127.0.0.1:{server.port}", "alice"):
        await trio.sleep(30)
        flapping = list(logins)
        gaps = [b - a for a, b in zip(flapping, flapping[1:], strict=False)]
        assert len(flapping) <= 45, len(flapping)
        assert min(gaps[5:]) >= 0.7
        hold["for"] = 20.0  # the next connection lasts: a new outage after it
        await logged_in[0].wait()
        hold["for"] = 0.0
        stable_at = logins[-1]
        await logged_in[0].wait()
        assert logins[-1] - (stable_at + 20.0) <= 0.3  # the quick first retry
