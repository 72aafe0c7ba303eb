"""Event fan-out: every subscriber gets every event; a non-reader never blocks the rest."""

from __future__ import annotations

import trio

from rtmcall.client.events import MessageFromPeer, TokenPrivilegeWillExpire
from rtmcall.client.fanout import EventFanout


async def test_every_subscriber_gets_every_later_event() -> None:
    hub = EventFanout()
    hub.publish(MessageFromPeer("a", "before anyone listened"))
    one, two = hub.subscribe(), hub.subscribe()
    events = [MessageFromPeer("a", str(i)) for i in range(3)]
    for ev in events:
        hub.publish(ev)
    hub.close()
    for sub in (one, two):
        async with sub:
            assert [ev async for ev in sub] == events


async def test_a_full_subscriber_loses_events_alone_and_they_are_counted() -> None:
    hub = EventFanout(buffer=2)
    slow, fast = hub.subscribe(), hub.subscribe(buffer=100)
    for i in range(5):
        hub.publish(TokenPrivilegeWillExpire(float(i)))
    assert hub.dropped == 3
    hub.close()
    assert [ev.seconds async for ev in slow] == [0.0, 1.0]
    assert [ev.seconds async for ev in fast] == [0.0, 1.0, 2.0, 3.0, 4.0]


async def test_closed_subscribers_are_forgotten_and_late_subscribers_end_at_once() -> None:
    hub = EventFanout()
    gone = hub.subscribe()
    await gone.aclose()
    hub.publish(MessageFromPeer("a", "x"))
    assert hub.subscribers == 0
    hub.close()
    late = hub.subscribe()
    with trio.fail_after(1):
        assert [ev async for ev in late] == []


def test_events_have_names() -> None:
    assert MessageFromPeer("a", "b").name == "MessageFromPeer"
