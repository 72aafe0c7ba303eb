"""The engine driver without sockets: a fake transport records the frames it is given."""

from __future__ import annotations

from typing import Any

import trio

from rtmcall.client.driver import Driver, delivery_code
from rtmcall.client.events import PeersOnlineStatusChanged
from rtmcall.engine import frames as f
from rtmcall.engine.codes import (
    LocalInvitationError,
    LocalInvitationState,
    PeerMessageError,
    PeerOnlineState,
)
from rtmcall.engine.engine import CallEngine, EngineConfig
from rtmcall.engine.events import InvitationEvent


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[f.ClientFrame, Any]] = []
        self.rid = 0

    def next_rid(self) -> int:
        self.rid += 1
        return self.rid

    def send(self, frame: f.ClientFrame, on_answer: Any = None, *, wanted: Any = None) -> None:
        self.sent.append((frame, on_answer))

    def frames(self, kind: type) -> list[Any]:
        return [fr for fr, _ in self.sent if isinstance(fr, kind)]

    def answer(self, frame: f.ClientFrame, answer: Any) -> None:
        for fr, cb in self.sent:
            if fr is frame:
                cb(answer)
                return
        raise AssertionError(f"{frame} was not sent")


def make(config: EngineConfig | None = None) -> tuple[Driver, FakeTransport, list[Any]]:
    engine = CallEngine(
        "alice", config or EngineConfig(), new_id=iter(f"inv{i}" for i in range(99)).__next__
    )
    engine.set_logged_in(True)
    transport = FakeTransport()
    published: list[Any] = []
    driver = Driver(engine, transport, published.append)  # type: ignore[arg-type]
    return driver, transport, published


async def test_send_peer_becomes_a_send_frame_and_its_result_reaches_the_engine() -> None:
    driver, transport, _ = make()
    inv = driver.engine.create_local_invitation("bob", content="hi")
    driver.apply(driver.engine.send(inv))
    (send,) = transport.frames(f.Send)
    assert send.to == "bob" and send.msg == f.Invite(id="inv0", content="hi")
    # The engine watches the callee: a Subscribe went out after the Invite.
    (sub,) = transport.frames(f.Subscribe)
    assert sub.users == ["bob"]
    assert [type(fr) for fr, _ in transport.sent] == [f.Send, f.Subscribe]
    # bob is offline: the Invite is undelivered, and presence says so; nothing ends yet.
    transport.answer(send, f.Result(rid=send.rid, code=PeerMessageError.PEER_UNREACHABLE))
    transport.answer(sub, f.Presence(states={"bob": 2}, rid=sub.rid))
    assert inv.state is LocalInvitationState.SENT_TO_REMOTE
    # bob logs in (a presence push): the Invite goes again.
    driver.presence_update({"bob": 0})
    assert len(transport.frames(f.Send)) == 2


async def test_no_ack_timer_fires_through_the_timer_table(autojump_clock: Any) -> None:
    driver, transport, published = make()
    inv = driver.engine.create_local_invitation("bob")
    driver.apply(driver.engine.send(inv))
    deadline = driver.timer_deadline(inv)
    assert deadline is not None
    # The timer is keyed as the engine named it; firing it fails the invitation.
    (key,) = [k for k in driver.timers._deadlines]
    driver._timer_fired(key)
    assert inv.state is LocalInvitationState.FAILURE
    assert inv.error is LocalInvitationError.PEER_OFFLINE
    assert [e.name for e in published if isinstance(e, InvitationEvent)] == [
        "LocalInvitationFailure"
    ]
    assert driver.timer_deadline(inv) is None
    # bob stays watched for a while (EngineConfig.keep_watching): no Unsubscribe yet.
    assert not transport.frames(f.Unsubscribe)


async def test_a_peer_no_longer_watched_is_unsubscribed(autojump_clock: Any) -> None:
    driver, transport, _ = make(EngineConfig(keep_watching=0))
    inv = driver.engine.create_local_invitation("bob")
    driver.apply(driver.engine.send(inv))
    (key,) = [k for k in driver.timers._deadlines]
    driver._timer_fired(key)
    (unsub,) = transport.frames(f.Unsubscribe)
    assert unsub.users == ["bob"]


async def test_application_and_engine_share_one_subscription_per_peer() -> None:
    driver, transport, published = make()
    driver.user_watch.add("bob")
    driver.subscribe(["bob"])
    inv = driver.engine.create_local_invitation("bob")
    driver.apply(driver.engine.send(inv))
    # The engine's watch adds no second Subscribe: the application already has one.
    assert len(transport.frames(f.Subscribe)) == 1
    driver.apply(driver.engine.cancel(inv))
    driver.apply(driver.engine.receive("bob", f.CancelAck(id=inv.id)))
    # The engine lets go, the application's subscription stays.
    assert transport.frames(f.Unsubscribe) == []
    driver.presence_update({"bob": 0})
    driver.presence_update({"bob": 0})  # unchanged: no second event
    driver.presence_update({"bob": 2, "carol": 0})  # carol is nobody's: ignored
    changes = [e.states for e in published if isinstance(e, PeersOnlineStatusChanged)]
    assert changes == [{"bob": PeerOnlineState.ONLINE}, {"bob": PeerOnlineState.OFFLINE}]


def test_delivery_codes() -> None:
    assert delivery_code(f.Result(rid=1, code=3)) is PeerMessageError.PEER_UNREACHABLE
    assert delivery_code(f.Result(rid=1, code=999)) is PeerMessageError.FAILURE
    assert delivery_code(f.Error(code="too_often", message="", rid=1)) is PeerMessageError.TOO_OFTEN
    assert delivery_code(f.Error(code="what", message="", rid=1)) is PeerMessageError.FAILURE


async def test_a_subscribe_refused_as_too_often_is_asked_again(autojump_clock: Any) -> None:
    """Subscribe shares the user's rate bucket: a refused one is repeated after a backoff
    for the peers still watched, so the engine learns when a caller goes offline."""
    key = ("resubscribe", "driver")

    def refuse_all(subs: list[f.Subscribe]) -> None:
        for sub in subs:
            transport.answer(sub, f.Error(code="too_often", message="too many", rid=sub.rid))

    def fire() -> float:
        deadline = driver.timers.deadline(key)
        assert deadline is not None
        driver.timers.cancel(key)
        driver._timer_fired(key)
        return deadline - trio.current_time()

    driver, transport, _ = make(EngineConfig(keep_watching=0))
    driver.apply(driver.engine.receive("bob", f.Invite(id="i1")))
    driver.apply(driver.engine.receive("carol", f.Invite(id="i2")))
    first = transport.frames(f.Subscribe)
    assert [s.users for s in first] == [["bob"], ["carol"]]
    refuse_all(first)
    # carol's invitation ends meanwhile and she is no longer watched: only bob is asked.
    driver.apply(driver.engine.refuse("i2"))
    assert fire() == 0.5
    (again,) = transport.frames(f.Subscribe)[2:]
    assert again.users == ["bob"]
    refuse_all([again])
    assert fire() == 1.0  # the backoff doubles
    (third,) = transport.frames(f.Subscribe)[3:]
    transport.answer(third, f.Presence(states={"bob": 2}, rid=third.rid))
    # The answer came: bob is offline, so his invitation fails; nothing more is asked.
    assert driver.engine.remote["i1"].terminal
    assert driver.timers.deadline(key) is None
