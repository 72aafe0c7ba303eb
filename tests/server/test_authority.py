"""Only the callee may ACK/accept/refuse an invitation, only the caller may cancel or
confirm it: a third user who knows the id is ignored (and counted)."""

from __future__ import annotations

import trio

from rtmcall.engine.codes import PeerMessageError
from rtmcall.engine.frames import (
    Accept,
    Ack,
    Cancel,
    Confirm,
    Deliver,
    End,
    Invite,
    PeerMsg,
    Ping,
    Refuse,
    ServerPong,
    Text,
)
from rtmcall.server import Server
from rtmcall.server.authority import InvitationLedger

from .conftest import Client, Harness

INVALID = PeerMessageError.INVALID_MESSAGE


async def nothing_pending(client: Client) -> None:
    await client.send(Ping())
    assert isinstance(await client.recv(), ServerPong)


async def test_third_user_cannot_answer_or_cancel(harness: Harness, server: Server) -> None:
    with trio.fail_after(10):
        caller = await harness.user("caller")
        callee = await harness.user("callee")
        mallory = await harness.user("mallory")

        rid = await caller.send_to("callee", Invite(id="inv-1", content="hi"))
        assert (await caller.result(rid)).code == PeerMessageError.OK
        assert (await callee.expect(Deliver)).msg == Invite(id="inv-1", content="hi")

        forged: list[tuple[str, PeerMsg]] = [
            ("caller", Accept(id="inv-1", response="sure")),
            ("caller", Refuse(id="inv-1")),
            ("caller", Ack(id="inv-1")),
            ("callee", Cancel(id="inv-1")),
            ("callee", Confirm(id="inv-1")),
            ("callee", Invite(id="inv-1")),
            ("caller", End(id="inv-1", reason="expire")),
        ]
        for to, msg in forged:
            rid = await mallory.send_to(to, msg)
            result = await mallory.result(rid)
            assert result.code == INVALID, msg
            assert "inv-1" in result.message
        assert server.stats.unauthorized_ignored == len(forged)
        await nothing_pending(caller)
        await nothing_pending(callee)

        # The real parties still can; the callee may not cancel, the caller may not accept.
        rid = await caller.send_to("callee", Accept(id="inv-1"))
        assert (await caller.result(rid)).code == INVALID
        rid = await callee.send_to("caller", Accept(id="inv-1", response="ok"))
        assert (await callee.result(rid)).code == PeerMessageError.OK
        assert (await caller.expect(Deliver)).msg == Accept(id="inv-1", response="ok")
        rid = await caller.send_to("callee", Confirm(id="inv-1"))
        assert (await caller.result(rid)).code == PeerMessageError.OK

        # Text and unknown ids are not the ledger's business.
        rid = await mallory.send_to("caller", Text(text="hello"))
        assert (await mallory.result(rid)).code == PeerMessageError.OK
        rid = await mallory.send_to("caller", Accept(id="never-seen"))
        assert (await mallory.result(rid)).code == PeerMessageError.OK


def test_ledger_forgets_after_lifetime() -> None:
    now = [0.0]
    ledger = InvitationLedger(lambda: now[0], margin=10, default_lifetime=60)
    ledger.note("a", "b", Invite(id="x"))
    ledger.note("a", "b", Invite(id="y", lifetime=1000))
    assert ledger.check("m", "a", Accept(id="x")) is not None
    now[0] = 71
    ledger.note("a", "c", Invite(id="z"))  # any note sweeps expired entries
    assert ledger.check("m", "a", Accept(id="x")) is None
    assert ledger.check("m", "a", Accept(id="y")) is not None
    assert len(ledger) == 2


def test_ledger_forgets_soon_after_the_end() -> None:
    now = [0.0]
    ledger = InvitationLedger(lambda: now[0], margin=10, default_lifetime=60)
    ledger.note("a", "b", Invite(id="x"))
    ledger.note("b", "a", Refuse(id="x"))
    assert ledger.check("m", "a", Accept(id="x")) is not None  # still guarded a little
    now[0] = 11
    ledger.note("a", "b", Invite(id="other"))
    assert ledger.check("m", "a", Accept(id="x")) is None


def test_ledger_is_bounded() -> None:
    ledger = InvitationLedger(lambda: 0.0, max_entries=100)
    for i in range(1000):
        ledger.note("a", "b", Invite(id=f"id{i}"))
        ledger.note("b", "a", Refuse(id=f"id{i}"))  # stale heap entries pile up too
    assert len(ledger) == 100
    assert len(ledger._heap) <= 2 * 100 + 1024 + 2


def test_ledger_caller_equals_callee() -> None:
    ledger = InvitationLedger(lambda: 0.0)
    ledger.note("a", "a", Invite(id="self"))
    assert ledger.check("a", "a", Accept(id="self")) is None
    assert ledger.check("a", "a", Cancel(id="self")) is None
    assert ledger.check("a", "a", End(id="self", reason="expire")) is None
    assert ledger.check("b", "a", End(id="self", reason="expire")) is not None
