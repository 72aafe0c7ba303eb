"""Who may hang up a call (SPEC §6): only its two parties, only after the accept's confirm
went through the server. Anyone else's Hangup is refused, counted, and the call goes on."""

from __future__ import annotations

import trio

from rtmcall.engine.codes import PeerMessageError
from rtmcall.engine.frames import (
    Accept,
    Ack,
    Confirm,
    Deliver,
    Hangup,
    HangupAck,
    Invite,
)
from rtmcall.server import Server
from rtmcall.server.authority import InvitationLedger

from .conftest import Harness

INVALID = PeerMessageError.INVALID_MESSAGE
OK = PeerMessageError.OK


async def test_only_the_parties_hang_up_and_only_after_the_accept(
    harness: Harness, server: Server
) -> None:
    with trio.fail_after(10):
        caller = await harness.user("caller")
        callee = await harness.user("callee")
        mallory = await harness.user("mallory")
        rid = await caller.send_to("callee", Invite(id="c-1"))
        assert (await caller.result(rid)).code == OK
        await callee.expect(Deliver)
        rid = await callee.send_to("caller", Ack(id="c-1"))
        assert (await callee.result(rid)).code == OK
        await caller.expect(Deliver)

        # Ringing: there is no call yet for the callee to hang up.
        rid = await callee.send_to("caller", Hangup(id="c-1"))
        result = await callee.result(rid)
        assert result.code == INVALID and "never accepted" in result.message
        assert server.stats.unauthorized_ignored == 1
        # (The caller's passes: it implies its Confirm, which the caller may send at any
        # moment; a callee that has not accepted ignores it.)
        rid = await caller.send_to("callee", Hangup(id="c-1"))
        assert (await caller.result(rid)).code == OK
        assert (await callee.expect(Deliver)).msg == Hangup(id="c-1")
        assert server.stats.unauthorized_ignored == 1

        rid = await callee.send_to("caller", Accept(id="c-1"))
        assert (await callee.result(rid)).code == OK
        await caller.expect(Deliver)
        rid = await caller.send_to("callee", Confirm(id="c-1"))
        assert (await caller.result(rid)).code == OK
        await callee.expect(Deliver)

        # In the call: a third user may not hang it up for either side.
        for to, msg in (("caller", Hangup(id="c-1")), ("callee", HangupAck(id="c-1"))):
            rid = await mallory.send_to(to, msg)
            result = await mallory.result(rid)
            assert result.code == INVALID and "c-1" in result.message
        assert server.stats.unauthorized_ignored == 3

        # The parties can, either way, and the ack goes back.
        rid = await callee.send_to("caller", Hangup(id="c-1"))
        assert (await callee.result(rid)).code == OK
        assert (await caller.expect(Deliver)).msg == Hangup(id="c-1")
        rid = await caller.send_to("callee", HangupAck(id="c-1"))
        assert (await caller.result(rid)).code == OK
        assert (await callee.expect(Deliver)).msg == HangupAck(id="c-1")
        assert server.stats.unauthorized_ignored == 3


def test_ledger_keeps_a_call_until_its_hangup() -> None:
    now = [0.0]
    ledger = InvitationLedger(lambda: now[0], margin=10, default_lifetime=60)
    ledger.note("a", "b", Invite(id="x"))
    ledger.note("a", "b", Confirm(id="x"))
    now[0] = 3600.0  # an hour-long call: still guarded
    ledger.note("a", "c", Invite(id="other"))
    assert ledger.check("m", "a", Hangup(id="x")) is not None
    assert ledger.check("b", "a", Hangup(id="x")) is None
    ledger.note("b", "a", Hangup(id="x"))
    assert ledger.check("a", "b", HangupAck(id="x")) is None  # the ack still passes
    now[0] = 3611.0
    ledger.note("a", "c", Invite(id="more"))
    assert ledger.check("m", "a", Hangup(id="x")) is None  # forgotten: unknown ids pass
    # Unknown ids (another node's invitation) pass: the engines ignore strangers.
    assert ledger.check("m", "a", Hangup(id="never-seen")) is None


def test_calls_that_never_end_push_out_older_calls_not_ringing_invitations() -> None:
    ledger = InvitationLedger(lambda: 0.0, max_entries=1000, max_calls=10)
    for i in range(50):  # Agora 1.x clients: accepted, never hung up
        ledger.note("a", "b", Invite(id=f"c{i}"))
        ledger.note("a", "b", Confirm(id=f"c{i}"))
    ledger.note("a", "b", Invite(id="ringing"))
    assert ledger.check("m", "a", Accept(id="ringing")) is not None
    assert ledger.check("m", "a", Hangup(id="c49")) is not None  # the newest calls: kept
    assert len(ledger._on) == 10


def test_ledger_lets_the_caller_hang_up_in_place_of_its_confirm() -> None:
    now = [0.0]
    ledger = InvitationLedger(lambda: now[0], margin=10, default_lifetime=60)
    ledger.note("a", "b", Invite(id="x"))
    ledger.note("b", "a", Accept(id="x"))
    # The callee's hang-up before any Confirm: refused; the caller's implies the Confirm.
    assert ledger.check("b", "a", Hangup(id="x")) is not None
    assert ledger.check("m", "b", Hangup(id="x")) is not None
    assert ledger.check("a", "b", Hangup(id="x")) is None
    ledger.note("a", "b", Hangup(id="x"))
    assert ledger.check("b", "a", HangupAck(id="x")) is None  # the callee's ack passes
    assert ledger.check("m", "a", HangupAck(id="x")) is not None
