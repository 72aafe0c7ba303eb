"""Metrics, the call log and webhooks of one server, checked against what the users saw.

A real server on a free loopback port with ``ops`` on, real SDK clients over real
WebSockets, a real webhook receiver (``receiver.py``) and the metrics parsed with
``prometheus_client``'s own parser. ``autojump_clock``: the protocol windows pass at once.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from trio.testing import MockClock

from rtmcall.client import ClientConfig
from rtmcall.engine import frames as f
from rtmcall.engine.codes import LocalInvitationState as LS
from rtmcall.engine.engine import LocalInvitation
from rtmcall.server import Server, serve
from rtmcall.server.ops import OpsOptions
from rtmcall.server.webhooks import WebhookConfig

from ..e2e.conftest import phone, raw
from .receiver import Receiver

SECRET = b"webhook-secret-for-tests"
WINDOWS = ClientConfig(no_response_timeout=2.0, lifetime=3.0, confirm_timeout=1.0)
_OUTCOME = {
    LS.ACCEPTED_BY_REMOTE: "accepted",
    LS.REFUSED_BY_REMOTE: "refused",
    LS.CANCELED: "canceled",
    LS.FAILURE: "failed",
}


def metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Samples by (name, labels), parsed by prometheus_client."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def scrape(url: str) -> str:
    async with httpx.AsyncClient() as client:
        answer = await client.get(url)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return answer.text


async def play_every_outcome(url: str) -> dict[str, LocalInvitation]:
    """Seven invitations, one per way an invitation ends; returns them by name."""
    invs: dict[str, LocalInvitation] = {}
    async with (
        phone(url, "alice", WINDOWS) as alice,
        phone(url, "bob", WINDOWS) as bob,
        phone(url, "carol", WINDOWS) as carol,
        raw(url, "mute") as mute,  # online, never ACKs
    ):
        inv = invs["accepted"] = await alice.client.call("bob", content="lunch?")
        await bob.wait("RemoteInvitationReceived", inv.id)
        await bob.client.accept(inv.id, response="on my way")
        await alice.wait("LocalInvitationAccepted", inv.id)

        inv = invs["refused"] = await alice.client.call("bob")
        await bob.wait("RemoteInvitationReceived", inv.id)
        await bob.client.refuse(inv.id, response="busy")
        await alice.wait("LocalInvitationRefused", inv.id)

        inv = invs["canceled"] = await alice.client.call("bob")
        await alice.wait("LocalInvitationReceivedByPeer", inv.id)
        await alice.client.cancel(inv.id)
        await bob.wait("RemoteInvitationCanceled", inv.id)

        inv = invs["offline"] = await alice.client.call("ghost")
        await alice.wait("LocalInvitationFailure", inv.id)

        inv = invs["no_response"] = await alice.client.call("mute")
        await mute.recv_peer(f.Invite)
        await alice.wait("LocalInvitationFailure", inv.id)

        inv = invs["expired"] = await carol.client.call("bob")
        await bob.wait("RemoteInvitationReceived", inv.id)
        await bob.wait("RemoteInvitationFailure", inv.id)
        await carol.wait("LocalInvitationFailure", inv.id)

        async with phone(url, "dave", WINDOWS) as dave:
            inv = invs["caller_left"] = await dave.client.call("bob")
            await bob.wait("RemoteInvitationReceived", inv.id)
            await dave.client.logout()
        await bob.wait("RemoteInvitationFailure", inv.id)
    return invs


EXPECTED = {
    "accepted": ("accepted", None),
    "refused": ("refused", None),
    "canceled": ("canceled", None),
    "offline": ("failed", "PEER_OFFLINE"),
    "no_response": ("failed", "PEER_NO_RESPONSE"),
    "expired": ("failed", "INVITATION_EXPIRE"),
    "caller_left": ("failed", "NOT_LOGGEDIN"),
}


async def test_every_outcome_in_log_metrics_and_webhooks(
    nursery: trio.Nursery, autojump_clock: MockClock, tmp_path: Path
) -> None:
    receiver = await nursery.start(Receiver(SECRET).run)
    log_path = tmp_path / "calls.jsonl"
    ops = OpsOptions(
        metrics=True,
        call_log=str(log_path),
        webhooks=WebhookConfig(urls=(receiver.url("/ok"),), secret=SECRET),
    )
    server: Server = await nursery.start(partial(serve, "127.0.0.1", 0, ops=ops))
    invs = await play_every_outcome(server.url)
    await trio.sleep(10)  # (virtual) every backstop that could wrongly fire has passed

    # What the users saw is what the plan said.
    for name, inv in invs.items():
        error = inv.error.name if inv.error else None
        assert (_OUTCOME[inv.state], error) == EXPECTED[name], name

    # The call log: one line per invitation, as the caller saw it.
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    by_id = {line["id"]: line for line in lines}
    assert len(lines) == len(by_id) == len(invs)
    for name, inv in invs.items():
        line = by_id[inv.id]
        assert (line["outcome"], line["error"]) == EXPECTED[name], name
        assert (line["caller"], line["callee"]) == (inv.caller, inv.callee)
        assert line["caller_node"] == server.url.split("//")[1]
        assert line["sent_at"] <= line["ended_at"]
    accepted = by_id[invs["accepted"].id]
    assert accepted["response"] == "on my way" and accepted["content"] == "lunch?"
    assert accepted["ringing_at"] <= accepted["answered_at"] <= accepted["ended_at"]
    assert accepted["setup_ms"] is not None and accepted["missed"] is False
    # Its call, never hung up, ended when bob (the callee) logged out first.
    assert accepted["call_end"] == "callee_offline" and accepted["call_duration"] > 0
    assert all(line["call_end"] is None for line in lines if line is not accepted)
    assert by_id[invs["refused"].id]["response"] == "busy"
    assert by_id[invs["offline"].id]["ringing_at"] is None
    assert by_id[invs["offline"].id]["callee_was_offline"] is True
    assert by_id[invs["caller_left"].id]["callee_error"] == "PEER_OFFLINE"
    assert by_id[invs["expired"].id]["callee_error"] == "INVITATION_EXPIRE"
    missed = {name for name in invs if by_id[invs[name].id]["missed"]}
    assert missed == {"canceled", "offline", "no_response", "expired", "caller_left"}
    assert not any(line["inferred"] for line in lines)

    # The metrics, parsed by prometheus_client, count the same.
    samples = metrics(await scrape(server.url.replace("ws://", "http://") + "/metrics"))
    node = server.url.split("//")[1]
    for (n, labels), _ in samples.items():
        assert ("node", node) in labels, n
    outcomes = Counter(EXPECTED.values())
    for (outcome, error), count in outcomes.items():
        got = value(samples, "rtmcall_invitations_total", outcome=outcome, error=error or "")
        assert got == count, (outcome, error)
    assert value(samples, "rtmcall_invitations_total") == len(invs)
    assert value(samples, "rtmcall_invitations_sent_total") == len(invs)
    assert value(samples, "rtmcall_invitations_callee_offline_total") == 1
    assert value(samples, "rtmcall_invitations_missed_total") == 5
    assert value(samples, "rtmcall_call_setup_seconds_count") == 1
    assert value(samples, "rtmcall_invitations_in_progress") == 0
    assert value(samples, "rtmcall_logins_total", result="ok") == 5  # alice bob carol mute dave
    assert value(samples, "rtmcall_users_online") == 0
    assert value(samples, "rtmcall_call_log_lines_total", result="written") == len(invs)

    # The webhooks: every event once, signed.
    await receiver.wait_for(lambda: len(receiver.accepted()) >= 7 + 7 + 5 + 5 + 1 + 10)
    await trio.sleep(5)
    events = receiver.accepted()
    assert all(d.signature_ok for d in receiver.requests)
    kinds = Counter(e["type"] for e in events)
    assert kinds == {
        "invitation.sent": 7,
        "invitation.ringing": 5,
        "invitation.ended": 7,
        "invitation.missed": 5,
        "callee.offline": 1,
        "call.ended": 1,
        "user.online": 5,
        "user.offline": 5,
    }
    ended = {e["data"]["id"]: e["data"] for e in events if e["type"] == "invitation.ended"}
    assert {k: (v["outcome"], v["error"]) for k, v in ended.items()} == {
        invs[name].id: EXPECTED[name] for name in invs
    }
    assert value(samples, "rtmcall_webhook_backlog") >= 0


@pytest.mark.parametrize("separate_port", [False, True])
async def test_metrics_on_the_server_port_or_their_own(
    nursery: trio.Nursery, autojump_clock: MockClock, separate_port: bool
) -> None:
    ops = OpsOptions(metrics=True, metrics_port=0 if separate_port else None)
    server: Server = await nursery.start(partial(serve, "127.0.0.1", 0, ops=ops))
    assert server.ops is not None and server.ops.metrics_url is not None
    async with phone(server.url, "alice") as alice, phone(server.url, "bob") as bob:
        inv = await alice.client.call("bob")
        await bob.wait("RemoteInvitationReceived", inv.id)
        await bob.client.accept(inv.id)
        await bob.wait("RemoteInvitationAccepted", inv.id)
        samples = metrics(await scrape(server.ops.metrics_url))
        assert value(samples, "rtmcall_users_online") == 2
        assert value(samples, "rtmcall_connections") >= 2
    assert value(samples, "rtmcall_invitations_total", outcome="accepted") == 1
    assert value(samples, "rtmcall_peer_messages_total", result="delivered") >= 3
    # A WebSocket client on the same port is not disturbed by the metrics path.
    async with phone(server.url, "carol") as carol:
        assert carol.client.user == "carol"
    async with httpx.AsyncClient() as client:
        missing = await client.get(server.ops.metrics_url.replace("/metrics", "/nothing"))
    # Other paths: the metrics port knows none; the server's port wants a WebSocket.
    assert missing.status_code == (404 if separate_port else 400)


async def test_the_metrics_peek_keeps_the_handshake_timeout_and_reads_a_slow_request(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    server: Server = await nursery.start(
        partial(serve, "127.0.0.1", 0, ops=OpsOptions(metrics=True))
    )
    silent = await trio.open_tcp_stream("127.0.0.1", server.port)
    start = trio.current_time()
    with trio.fail_after(30):
        assert await silent.receive_some(100) == b""  # closed, having sent nothing
    assert trio.current_time() - start == pytest.approx(server.config.handshake_timeout, abs=0.1)
    slow = await trio.open_tcp_stream("127.0.0.1", server.port)
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    for i in range(0, len(request), 3):
        await slow.send_all(request[i : i + 3])
        await trio.sleep(0.05)
    answer = b""
    with trio.fail_after(30):
        while chunk := await slow.receive_some(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert value(metrics(body.decode()), "rtmcall_connections") >= 1
