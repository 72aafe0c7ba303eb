"""Calls (SPEC §6) as the operator sees them: ``rtmcall_calls_in_progress``, the call log's
``call_duration`` / ``call_end`` (an accepted invitation's one line, written when its call
ends) and the ``call.ended`` webhook. A real server on a free loopback port, real SDK
clients over real WebSockets, a real webhook receiver; ``autojump_clock``."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from rtmcall.client import CallEndReason
from rtmcall.server import Server, serve
from rtmcall.server.ops import OpsOptions
from rtmcall.server.webhooks import WebhookConfig

from ..e2e.conftest import Proxy, phone
from ..e2e.test_calls import connect_call, ended
from .receiver import Receiver
from .test_single_node import SECRET, metrics, scrape, value

R = CallEndReason


class Ops:
    """A server with metrics, a call log and a webhook receiver."""

    def __init__(self, server: Server, log: Path, receiver: Receiver) -> None:
        self.server = server
        self.log = log
        self.receiver = receiver
        self.metrics_url = server.url.replace("ws://", "http://") + "/metrics"

    def lines(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    async def sample(self, name: str, **labels: str) -> float:
        return value(metrics(await scrape(self.metrics_url)), name, **labels)

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e["data"] for e in self.receiver.accepted() if e["type"] == kind]


async def start_ops(nursery: trio.Nursery, tmp_path: Path, receiver: Receiver | None = None) -> Ops:
    """A server in ``nursery``; the receiver too, unless one is given."""
    receiver = receiver or await nursery.start(Receiver(SECRET).run)
    log = tmp_path / "calls.jsonl"
    ops = OpsOptions(
        metrics=True,
        call_log=str(log),
        webhooks=WebhookConfig(urls=(receiver.url("/ok"),), secret=SECRET),
    )
    server: Server = await nursery.start(partial(serve, "127.0.0.1", 0, ops=ops))
    return Ops(server, log, receiver)


@pytest.mark.parametrize("side", ["caller", "callee"])
async def test_a_call_hung_up_from_each_side(
    nursery: trio.Nursery, autojump_clock: MockClock, tmp_path: Path, side: str
) -> None:
    ops = await start_ops(nursery, tmp_path)
    async with phone(ops.server.url, "alice") as alice, phone(ops.server.url, "bob") as bob:
        assert await ops.sample("rtmcall_calls_in_progress") == 0
        cid = await connect_call(alice, bob)
        assert await ops.sample("rtmcall_calls_in_progress") == 1
        assert await ops.sample("rtmcall_invitations_in_progress") == 0
        assert ops.lines() == []  # accepted, but the line waits for the call's end
        await trio.sleep(83)
        who, other = (alice, bob) if side == "caller" else (bob, alice)
        await who.client.hangup(cid)
        mine, theirs = await ended(who, cid), await ended(other, cid)
        assert (mine.reason, theirs.reason) == (R.HANGUP_LOCAL, R.HANGUP_REMOTE)
        await trio.sleep(1)
        assert await ops.sample("rtmcall_calls_in_progress") == 0
        samples = metrics(await scrape(ops.metrics_url))
        await trio.sleep(30)  # the HangupAck and any resend: still one line
        (line,) = ops.lines()
    assert line["id"] == cid and line["outcome"] == "accepted"
    assert line["call_end"] == f"hangup_by_{side}"
    assert line["call_duration"] == pytest.approx(83, abs=0.5)
    assert line["call_duration"] == pytest.approx(mine.duration, abs=0.5)
    assert line["ended_at"] < line["call_ended_at"]
    assert value(samples, "rtmcall_calls_ended_total", end=f"hangup_by_{side}") == 1
    assert value(samples, "rtmcall_calls_ended_total") == 1
    assert value(samples, "rtmcall_call_duration_seconds_count") == 1
    assert value(samples, "rtmcall_call_duration_seconds_sum") == pytest.approx(83, abs=0.5)
    assert value(samples, "rtmcall_call_duration_seconds_bucket", le="60.0") == 0
    assert value(samples, "rtmcall_call_duration_seconds_bucket", le="120.0") == 1
    # The webhooks: the invitation's end at the accept, the call's end with its duration.
    await ops.receiver.wait_for(lambda: len(ops.events("call.ended")) == 1)
    await trio.sleep(5)
    (call_ended,) = ops.events("call.ended")
    assert call_ended["id"] == cid and call_ended["call_end"] == f"hangup_by_{side}"
    assert call_ended["call_duration"] == line["call_duration"]
    (inv_ended,) = ops.events("invitation.ended")
    assert inv_ended["outcome"] == "accepted" and inv_ended["call_end"] is None
    assert all(d.signature_ok for d in ops.receiver.requests)


async def test_a_peer_dropping_mid_call_ends_it_callee_offline(
    nursery: trio.Nursery, autojump_clock: MockClock, tmp_path: Path
) -> None:
    ops = await start_ops(nursery, tmp_path)
    proxy: Proxy = await nursery.start(Proxy(ops.server.port).run)
    async with phone(ops.server.url, "alice") as alice, phone(proxy.url, "bob") as bob:
        cid = await connect_call(alice, bob)
        await trio.sleep(5)
        proxy.blocked = True
        proxy.cut()
        a = await ended(alice, cid, within=60)
        assert a.reason is R.PEER_OFFLINE
        await trio.sleep(1)
        assert await ops.sample("rtmcall_calls_in_progress") == 0
        (line,) = ops.lines()
        assert line["call_end"] == "callee_offline"
        # Dropped at 5 s; the session ends when its resume window runs out.
        window = ops.server.config.resume_window
        assert line["call_duration"] == pytest.approx(5 + window, abs=2)
        assert line["call_duration"] == pytest.approx(a.duration, abs=1)
    await trio.sleep(5)
    assert len(ops.lines()) == 1
    assert await ops.sample("rtmcall_calls_ended_total", end="callee_offline") == 1


async def test_a_caller_logging_out_mid_call_and_a_call_open_at_shutdown(
    nursery: trio.Nursery, autojump_clock: MockClock, tmp_path: Path
) -> None:
    server_nursery = await nursery.start(_nursery)
    ops = await start_ops(server_nursery, tmp_path)
    async with phone(ops.server.url, "bob") as bob, phone(ops.server.url, "carol") as carol:
        async with phone(ops.server.url, "alice") as alice:
            left = await connect_call(alice, bob)
            await trio.sleep(7)
            await alice.client.logout()  # (the SDK may hang up first: either is right)
        await ended(bob, left)
        open_call = await connect_call(carol, bob)
        await trio.sleep(11)
        assert await ops.sample("rtmcall_calls_in_progress") == 1
        server_nursery.cancel_scope.cancel()  # the server stops with the call on
        await trio.sleep(3)  # (its clients get the shutdown grace, 2 s, to close)
    lines = {line["id"]: line for line in ops.lines()}
    assert len(ops.lines()) == len(lines) == 2
    assert lines[left]["call_end"] in ("caller_offline", "hangup_by_caller")
    assert lines[left]["call_duration"] == pytest.approx(7, abs=0.5)
    assert lines[open_call]["call_end"] == "server_shutdown"
    assert lines[open_call]["call_duration"] == pytest.approx(11, abs=0.5)


async def _nursery(
    *, task_status: trio.TaskStatus[trio.Nursery] = trio.TASK_STATUS_IGNORED
) -> None:
    async with trio.open_nursery() as nursery:
        task_status.started(nursery)
        await trio.sleep_forever()


async def test_the_events_of_a_stop_reach_the_webhook(tmp_path: Path) -> None:
    """A server stopped with a call on and users logged in: the call's ``call.ended``
    (``server_shutdown``) and every ``user.offline`` are still delivered (the webhooks
    queued at the stop get the shutdown grace). Real clock: the deliveries are real I/O."""
    async with trio.open_nursery() as nursery:
        receiver = await nursery.start(Receiver(SECRET).run)  # (it outlives the server)
        server_nursery = await nursery.start(_nursery)
        ops = await start_ops(server_nursery, tmp_path, receiver)
        with trio.fail_after(20):
            async with phone(ops.server.url, "bob") as bob, phone(ops.server.url, "carol") as carol:
                call = await connect_call(carol, bob)
                await ops.receiver.wait_for(lambda: len(ops.events("user.online")) == 2)
                server_nursery.cancel_scope.cancel()
                await ops.receiver.wait_for(lambda: len(ops.events("user.offline")) == 2)
                await ops.receiver.wait_for(lambda: len(ops.events("call.ended")) == 1)
        (hook,) = ops.events("call.ended")
        assert (hook["id"], hook["call_end"]) == (call, "server_shutdown")
        assert sorted(e["user"] for e in ops.events("user.offline")) == ["bob", "carol"]
        assert [line["id"] for line in ops.lines()] == [call]
        nursery.cancel_scope.cancel()
