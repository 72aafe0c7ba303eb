"""With two server nodes over one real Redis, each invitation is logged once, by its
caller's node, with the outcome both users saw; each node's metrics count its own
callers' invitations. Real clock (Redis is another process), short windows."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path

import trio

from rtmcall.client import ClientConfig
from rtmcall.engine.engine import LocalInvitation
from rtmcall.server import Server, ServerConfig, serve
from rtmcall.server.ops import OpsOptions
from rtmcall.server.redis import open_redis_hub
from rtmcall.server.webhooks import WebhookConfig

from ..e2e.conftest import Phone, Proxy, phone
from ..e2e.test_calls import connect_call, ended
from ..redis.redisproc import RedisProcess
from ..redis.test_scale_out import node_process
from .receiver import Receiver
from .test_single_node import _OUTCOME, SECRET, metrics, scrape, value

FAST = ClientConfig(no_response_timeout=2.0, lifetime=3.0, confirm_timeout=1.0, expire_grace=1.0)
W = 10.0  # longest wait for one step (real seconds)


@asynccontextmanager
async def two_nodes(redis_url: str, logs: list[Path], hook: str) -> AsyncIterator[list[Server]]:
    prefix = f"ops{secrets.token_hex(3)}"
    async with AsyncExitStack() as stack:
        hubs = [
            await stack.enter_async_context(
                open_redis_hub(redis_url, node_id=f"n{i}", presence_ttl=1.5, prefix=prefix)
            )
            for i in range(len(logs))
        ]
        nursery = await stack.enter_async_context(trio.open_nursery())
        servers = []
        for hub, log in zip(hubs, logs, strict=True):
            hooks = WebhookConfig(urls=(hook,), secret=SECRET)
            ops = OpsOptions(metrics=True, call_log=str(log), webhooks=hooks)
            servers.append(
                await nursery.start(
                    partial(serve, "127.0.0.1", 0, hub=hub, config=ServerConfig(), ops=ops)
                )
            )
        yield servers
        nursery.cancel_scope.cancel()


async def test_each_invitation_is_logged_once_by_its_caller_s_node(
    shared_redis: RedisProcess, tmp_path: Path, nursery: trio.Nursery
) -> None:
    receiver = await nursery.start(Receiver(SECRET).run)
    logs = [tmp_path / "n0.jsonl", tmp_path / "n1.jsonl"]
    invs: dict[str, tuple[LocalInvitation, int]] = {}  # name -> (invitation, caller's node)
    with trio.fail_after(60):
        async with two_nodes(shared_redis.url, logs, receiver.url("/ok")) as (n0, n1):
            async with (
                phone(n0.url, "alice", FAST) as alice,
                phone(n1.url, "bob", FAST) as bob,
            ):
                inv = await alice.client.call("bob", content="hi")
                invs["accepted"] = (inv, 0)
                await bob.wait("RemoteInvitationReceived", inv.id, W)
                await bob.client.accept(inv.id, response="ok")
                await bob.wait("RemoteInvitationAccepted", inv.id, W)

                inv = await bob.client.call("alice")  # the other way: node 1 logs it
                invs["refused"] = (inv, 1)
                await alice.wait("RemoteInvitationReceived", inv.id, W)
                await alice.client.refuse(inv.id, response="later")
                await bob.wait("LocalInvitationRefused", inv.id, W)

                inv = await alice.client.call("bob")
                invs["canceled"] = (inv, 0)
                await alice.wait("LocalInvitationReceivedByPeer", inv.id, W)
                await alice.client.cancel(inv.id)
                await bob.wait("RemoteInvitationCanceled", inv.id, W)

                inv = await alice.client.call("ghost")
                invs["offline"] = (inv, 0)
                await alice.wait("LocalInvitationFailure", inv.id, W)

                inv = await alice.client.call("bob")
                invs["expired"] = (inv, 0)
                await alice.wait("LocalInvitationFailure", inv.id, W)
                await bob.wait("RemoteInvitationFailure", inv.id, W)

                async with phone(n1.url, "carol", FAST) as carol:
                    inv = await alice.client.call("carol")
                    invs["callee_left"] = (inv, 0)
                    await carol.wait("RemoteInvitationReceived", inv.id, W)
                    await carol.client.logout()
                await alice.wait("LocalInvitationFailure", inv.id, W)

                async with phone(n1.url, "dave", FAST) as dave:
                    inv = await alice.client.call("dave")
                    invs["callee_kicked"] = (inv, 0)
                    await dave.wait("RemoteInvitationReceived", inv.id, W)
                    async with phone(n0.url, "dave", FAST):  # a login on node 0 kicks it
                        await alice.wait("LocalInvitationFailure", inv.id, W)
                await trio.sleep(0.5)
                samples = [metrics(await scrape(s.ops.metrics_url)) for s in (n0, n1)]
                await receiver.wait_for(
                    lambda: (
                        sum(e["type"] == "invitation.ended" for e in receiver.accepted())
                        >= len(invs)
                    )
                )
                await trio.sleep(0.5)

    lines = [[json.loads(x) for x in log.read_text().splitlines()] for log in logs]
    every = [line["id"] for node in lines for line in node]
    assert sorted(every) == sorted(inv.id for inv, _ in invs.values())  # once each
    for name, (inv, node) in invs.items():
        (line,) = [x for x in lines[node] if x["id"] == inv.id]
        error = inv.error.name if inv.error else None
        assert (line["outcome"], line["error"]) == (_OUTCOME[inv.state], error), name
        assert line["caller_node"] == f"n{node}"
        assert not line["inferred"], name
    assert [x["outcome"] for x in lines[1]] == ["refused"]
    # (a logout the server takes for a drop waits for the lifetime: INVITATION_EXPIRE)
    callee_left = next(x for x in lines[0] if x["id"] == invs["callee_left"][0].id)
    assert callee_left["outcome"] == "failed"
    assert callee_left["error"] in ("PEER_OFFLINE", "INVITATION_EXPIRE")
    kicked = next(x for x in lines[0] if x["id"] == invs["callee_kicked"][0].id)
    assert (kicked["outcome"], kicked["error"]) == ("failed", "PEER_OFFLINE")
    ended = [e for e in receiver.accepted() if e["type"] == "invitation.ended"]
    assert sorted(e["data"]["id"] for e in ended) == sorted(every)  # once each, signed
    assert all(d.signature_ok for d in receiver.requests)
    for e in ended:
        assert e["node"] == e["data"]["caller_node"]
    for i, node_samples in enumerate(samples):
        assert value(node_samples, "rtmcall_invitations_total") == len(lines[i])
        assert value(node_samples, "rtmcall_redis_up") == 1
        assert value(node_samples, "rtmcall_redis_operations_total") > 0
        # Both nodes sent to the other (calls and their answers): over links, not Redis.
        assert value(node_samples, "rtmcall_node_links_up") == 1
        assert value(node_samples, "rtmcall_node_link_batches_total") > 0
        assert all(("node", f"n{i}") in labels for _, labels in node_samples)


async def test_calls_across_nodes_end_on_the_caller_s_node_at_either_side_s_hangup(
    shared_redis: RedisProcess, tmp_path: Path, nursery: trio.Nursery
) -> None:
    """The callee's Hangup reaches the caller's node through Redis (the hub's remote
    delivery): that node ends the call and logs its one line; the callee's node logs none."""
    receiver = await nursery.start(Receiver(SECRET).run)
    logs = [tmp_path / "n0.jsonl", tmp_path / "n1.jsonl"]
    with trio.fail_after(60):
        async with two_nodes(shared_redis.url, logs, receiver.url("/ok")) as (n0, n1):
            assert n0.ops is not None and n0.ops.metrics_url is not None
            url = n0.ops.metrics_url

            async def in_progress() -> float:
                return value(metrics(await scrape(url)), "rtmcall_calls_in_progress")

            async with (
                phone(n0.url, "alice", FAST) as alice,
                phone(n1.url, "bob", FAST) as bob,
            ):
                by_callee = await connect_call(alice, bob)
                assert await in_progress() == 1
                await trio.sleep(0.5)
                await bob.client.hangup(by_callee)
                await ended(alice, by_callee, W)
                await trio.sleep(0.3)
                assert await in_progress() == 0

                by_caller = await connect_call(alice, bob)
                assert await in_progress() == 1
                await alice.client.hangup(by_caller)
                await ended(bob, by_caller, W)
                await trio.sleep(0.3)
                assert await in_progress() == 0

                async with phone(n1.url, "carol", FAST) as carol:
                    dropped = await connect_call(alice, carol)
                    await carol.client.logout()
                await ended(alice, dropped, W)
                await trio.sleep(0.3)
                assert await in_progress() == 0
                await receiver.wait_for(
                    lambda: sum(e["type"] == "call.ended" for e in receiver.accepted()) >= 3
                )
    lines = {x["id"]: x for x in (json.loads(y) for y in logs[0].read_text().splitlines())}
    assert len(lines) == 3 and logs[1].read_text() == ""
    assert lines[by_callee]["call_end"] == "hangup_by_callee"
    assert 0.4 < lines[by_callee]["call_duration"] < W
    assert lines[by_caller]["call_end"] == "hangup_by_caller"
    assert lines[dropped]["call_end"] == "callee_offline"
    assert {x["callee_node"] for x in lines.values()} == {None}  # (held on another node)
    hooks = [e for e in receiver.accepted() if e["type"] == "call.ended"]
    assert sorted(e["data"]["id"] for e in hooks) == sorted(lines)
    assert all(e["node"] == "n0" for e in hooks)


async def test_invitations_and_calls_whose_party_resumes_on_another_node_end_once(
    shared_redis: RedisProcess, tmp_path: Path, nursery: trio.Nursery
) -> None:
    """Resume on any node: the callee's session moves from the caller's node to the other
    one mid-call; the call goes on, and its hang-up, now through Redis, ends it there.
    A caller that moves takes its call, and an invitation still ringing, to the new node,
    which logs them once as the users saw them (accepted, hung up); its webhooks say the
    session began there (``resumed``) and, at the logout, ended there."""
    receiver = await nursery.start(Receiver(SECRET).run)
    logs = [tmp_path / "n0.jsonl", tmp_path / "n1.jsonl"]
    with trio.fail_after(60):
        async with two_nodes(shared_redis.url, logs, receiver.url("/ok")) as (n0, n1):
            balancer = await nursery.start(Proxy(n0.port).run)

            async def move(p: Phone) -> None:
                balancer.target_port = n1.port  # new connections land on the other node
                balancer.cut()
                await p.wait_for(
                    lambda: (
                        p.client.transport.login_ok is not None
                        and p.client.transport.login_ok.resumed
                    ),
                    W,
                )

            async with (
                phone(n0.url, "alice", FAST) as alice,
                phone(balancer.url, "bob", FAST) as bob,
            ):
                callee_moved = await connect_call(alice, bob)
                await move(bob)
                await trio.sleep(0.5)
                assert alice.client.calls[callee_moved].active
                await bob.client.hangup(callee_moved)
                await ended(alice, callee_moved, W)
            balancer.target_port = n0.port
            async with (
                phone(balancer.url, "carol", FAST) as carol,
                phone(n1.url, "dave", FAST) as dave,
            ):
                caller_moved = await connect_call(carol, dave)
                ringing = await carol.client.call("dave")
                await dave.wait("RemoteInvitationReceived", ringing.id, W)
                await move(carol)
                await dave.client.accept(ringing.id)
                await carol.wait("LocalInvitationAccepted", ringing.id, W)
                await carol.client.hangup(caller_moved)
                await ended(dave, caller_moved, W)
                await carol.client.hangup(ringing.id)
                await ended(dave, ringing.id, W)
            await receiver.wait_for(
                lambda: sum(e["type"] == "call.ended" for e in receiver.accepted()) == 3
            )
            await trio.sleep(0.5)
    lines = [{x["id"]: x for x in map(json.loads, log.read_text().splitlines())} for log in logs]
    assert list(lines[0]) == [callee_moved]
    assert lines[0][callee_moved]["call_end"] == "hangup_by_callee"
    assert lines[0][callee_moved]["call_duration"] >= 0.5
    assert sorted(lines[1]) == sorted([caller_moved, ringing.id])
    for inv in (caller_moved, ringing.id):
        line = lines[1][inv]
        assert (line["outcome"], line["call_end"]) == ("accepted", "hangup_by_caller"), line
        assert line["caller_node"] == "n1" and not line["inferred"]
    assert lines[1][ringing.id]["sent_at"] < lines[1][ringing.id]["answered_at"]
    hooks = [e for e in receiver.accepted() if e["type"] in ("call.ended", "invitation.ended")]
    assert sorted((e["type"], e["data"]["id"]) for e in hooks) == sorted(
        (kind, inv)
        for inv in (callee_moved, caller_moved, ringing.id)
        for kind in ("call.ended", "invitation.ended")
    )
    carol_hooks = [
        (e["type"], e["node"], e["data"].get("resumed"), e["data"].get("reason"))
        for e in receiver.accepted()
        if e["type"].startswith("user.") and e["data"]["user"] == "carol"
    ]
    assert carol_hooks[0] == ("user.online", "n0", None, None)
    assert ("user.online", "n1", True, None) in carol_hooks
    assert ("user.offline", "n0", None, "resumed on node n1") in carol_hooks
    assert [h for h in carol_hooks if h[:2] == ("user.offline", "n1")], carol_hooks


async def test_a_dead_caller_node_s_invitation_and_call_are_logged_by_the_callee_s_node(
    shared_redis: RedisProcess, tmp_path: Path, nursery: trio.Nursery
) -> None:
    """The caller's node is SIGKILLed with an invitation ringing and a call on: it cannot
    log them; the callee's node, which followed both, does — once each, as the callee saw
    them (the caller gone), in its call log and its webhooks."""
    receiver = await nursery.start(Receiver(SECRET).run)
    log = tmp_path / "n0.jsonl"
    prefix = f"ops{secrets.token_hex(3)}"
    hooks = WebhookConfig(urls=(receiver.url("/ok"),), secret=SECRET)
    ops = OpsOptions(call_log=str(log), webhooks=hooks)
    with trio.fail_after(60):
        async with (
            open_redis_hub(shared_redis.url, node_id="n0", presence_ttl=30, prefix=prefix) as hub,
            node_process(shared_redis.url, "doomed", prefix, 30) as (proc, url),
        ):
            n0 = await nursery.start(partial(serve, "127.0.0.1", 0, hub=hub, ops=ops))
            async with phone(url, "alice", FAST) as alice, phone(n0.url, "bob", FAST) as bob:
                call = await connect_call(alice, bob)
                ringing = await alice.client.call("bob", content="still ringing")
                await bob.wait("RemoteInvitationReceived", ringing.id, W)
                await trio.sleep(0.5)
                proc.kill()
                await bob.wait("RemoteInvitationFailure", ringing.id, W)
                await ended(bob, call, W)
                await receiver.wait_for(
                    lambda: (
                        {e["type"] for e in receiver.accepted()}
                        >= {"call.ended", "invitation.ended"}
                    )
                )
                await trio.sleep(0.5)
    lines = {x["id"]: x for x in map(json.loads, log.read_text().splitlines())}
    assert sorted(lines) == sorted([call, ringing.id])
    assert lines[call]["call_end"] == "caller_offline" and lines[call]["call_duration"] >= 0.5
    assert lines[call]["caller_node"] == "doomed" and lines[call]["callee_node"] == "n0"
    line = lines[ringing.id]
    assert (line["outcome"], line["reason"], line["missed"]) == ("failed", "caller_node_lost", True)
    assert line["inferred"] and line["content"] == "still ringing"
    got = sorted((e["type"], e["data"]["id"]) for e in receiver.accepted() if e["data"].get("id"))
    assert got == sorted(
        [("call.ended", call), ("invitation.ended", ringing.id), ("invitation.missed", ringing.id)]
    )


async def test_a_caller_kicked_by_a_login_on_the_callee_s_node_is_not_logged_twice(
    shared_redis: RedisProcess, tmp_path: Path, nursery: trio.Nursery
) -> None:
    """alice (on a node of her own) is in a call with bob (on n0); she logs in afresh on
    n0, which kicks her old session: her node logs the call. When her node dies later,
    n0 does not log it again (it let go of what it followed of her there at the kick)."""
    log = tmp_path / "n0.jsonl"
    prefix = f"ops{secrets.token_hex(3)}"
    with trio.fail_after(60):
        async with (
            open_redis_hub(shared_redis.url, node_id="n0", presence_ttl=30, prefix=prefix) as hub,
            node_process(shared_redis.url, "doomed", prefix, 30) as (proc, url),
        ):
            ops = OpsOptions(call_log=str(log))
            n0 = await nursery.start(partial(serve, "127.0.0.1", 0, hub=hub, ops=ops))
            async with phone(url, "alice", FAST) as alice, phone(n0.url, "bob", FAST) as bob:
                call = await connect_call(alice, bob)
                async with phone(n0.url, "alice", FAST):  # a fresh login on bob's node
                    await ended(bob, call, W)
                    await trio.sleep(0.5)
                    assert not n0.observer.shadow_calls
                    proc.kill()
                    await trio.sleep(2)
    assert call not in (log.read_text() if log.exists() else "")
