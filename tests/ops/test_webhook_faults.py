"""Webhook endpoints that fail: 500s, answers slower than the timeout, a refusal, a dead
port, a full queue. Routing never waits for them; retries are bounded; what is dropped is
counted; the backlog shows in the metrics. A real receiver (``receiver.py``) on loopback."""

from __future__ import annotations

import socket
from collections import Counter
from functools import partial

import trio
from trio.testing import MockClock

from rtmcall.server import Server, serve
from rtmcall.server.ops import OpsOptions
from rtmcall.server.webhooks import WebhookConfig

from ..e2e.conftest import phone
from ..e2e.test_calls import call_events, ended
from .receiver import Receiver
from .test_single_node import SECRET, metrics, scrape, value


def dead_url() -> str:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


async def accept_calls(url: str, count: int) -> float:
    """``count`` calls alice → bob, each accepted then hung up by alice; the (virtual)
    seconds they took."""
    async with phone(url, "alice") as alice, phone(url, "bob") as bob:
        start = trio.current_time()
        for _ in range(count):
            inv = await alice.client.call("bob")
            await bob.wait("RemoteInvitationReceived", inv.id)
            await bob.client.accept(inv.id)
            await alice.wait("LocalInvitationAccepted", inv.id)
            await bob.wait("RemoteInvitationAccepted", inv.id)
            started = partial(call_events, alice, "CallStarted", inv.id)
            await alice.wait_for(lambda: bool(started()))  # noqa: B023 - awaited here
            await alice.client.hangup(inv.id)
            await ended(bob, inv.id)
        return trio.current_time() - start


async def test_500s_and_timeouts_are_retried_until_delivered_once_each(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    receiver = await nursery.start(Receiver(SECRET, fail_first=2, slow_for=30).run)
    paths = ("/ok", "/flaky", "/slow")
    hooks = WebhookConfig(
        urls=tuple(receiver.url(p) for p in paths),
        secret=SECRET,
        attempts=4,
        timeout=2.0,
        backoff=0.5,
    )
    server: Server = await nursery.start(
        partial(serve, "127.0.0.1", 0, ops=OpsOptions(metrics=True, webhooks=hooks))
    )
    took = await accept_calls(server.url, 3)
    assert took < 1.0  # the slow and failing endpoints cost the calls nothing
    # 3 x (sent, ringing, ended, call.ended) + 2 x user.online + 2 x user.offline
    want = 3 * 4 + 2 + 2
    await receiver.wait_for(lambda: all(len(receiver.accepted(p)) == want for p in paths), 60)
    assert all(d.signature_ok for d in receiver.requests)
    ids = {p: sorted(e["id"] for e in receiver.accepted(p)) for p in paths}
    assert ids["/ok"] == ids["/flaky"] == ids["/slow"]  # the same events, the same ids
    attempts = Counter(
        (d.path, d.headers["rtmcall-event-id"]) for d in receiver.requests if d.path == "/flaky"
    )
    assert set(attempts.values()) == {3}  # two 500s, then the 200
    numbers = sorted(
        int(d.headers["rtmcall-delivery-attempt"]) for d in receiver.requests if d.path == "/flaky"
    )
    assert numbers == sorted([1, 2, 3] * want)
    samples = metrics(await scrape(server.url.replace("ws", "http", 1) + "/metrics"))
    flaky = receiver.url("/flaky")
    attempts_of = partial(value, samples, "rtmcall_webhook_attempts_total")
    assert attempts_of(endpoint=flaky, result="5xx") == 2 * want
    events_of = partial(value, samples, "rtmcall_webhook_events_total")
    assert events_of(endpoint=flaky, result="delivered") == want
    assert attempts_of(endpoint=receiver.url("/slow"), result="timeout") == want
    assert value(samples, "rtmcall_webhook_backlog") == 0


async def test_a_dead_endpoint_and_a_refusing_one_bound_their_retries_and_drop_when_full(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    receiver = await nursery.start(Receiver(SECRET).run)
    dead = dead_url()
    hooks = WebhookConfig(
        urls=(dead, receiver.url("/refuse")),
        secret=SECRET,
        attempts=3,
        timeout=1.0,
        backoff=5.0,
        queue_size=4,
        workers=1,
    )
    server: Server = await nursery.start(
        partial(serve, "127.0.0.1", 0, ops=OpsOptions(metrics=True, webhooks=hooks))
    )
    took = await accept_calls(server.url, 5)
    assert took < 1.0
    # (sent, ringing, ended, call.ended) x 5, user.online x 2, user.offline x 2
    events = 5 * 4 + 2 + 2
    http = server.url.replace("ws", "http", 1) + "/metrics"
    during = metrics(await scrape(http))
    assert value(during, "rtmcall_webhook_backlog", endpoint=dead) == 5  # 4 queued + 1 trying
    dropped = value(during, "rtmcall_webhook_events_total", endpoint=dead, result="dropped")
    assert dropped == events - 5
    assert value(during, "rtmcall_invitations_total", outcome="accepted") == 5
    await trio.sleep(200)
    after = metrics(await scrape(http))
    kept = 5
    assert value(after, "rtmcall_webhook_events_total", endpoint=dead, result="failed") == kept
    assert value(after, "rtmcall_webhook_attempts_total", endpoint=dead, result="error") == 3 * kept
    assert value(after, "rtmcall_webhook_backlog") == 0
    # A 400 is final: one attempt per event, none dropped (it answers at once).
    refused = [d for d in receiver.requests if d.path == "/refuse"]
    assert len(refused) == events
    assert len({d.headers["rtmcall-event-id"] for d in refused}) == events
    refuse = receiver.url("/refuse")
    assert value(after, "rtmcall_webhook_events_total", endpoint=refuse, result="failed") == events
