"""Timers: deadlines on trio's clock, fired earliest first, re-armable from a firing."""

from __future__ import annotations

import trio

from rtmcall.client.driver import Timers


async def test_fires_in_deadline_order_at_the_right_time(autojump_clock: trio.abc.Clock) -> None:
    fired: list[tuple[str, float]] = []
    timers = Timers(lambda key: fired.append((key[0], trio.current_time())))
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(timers.run)
        timers.start(("b", "x"), 5)
        timers.start(("a", "x"), 2)
        timers.start(("c", "x"), 30)
        await trio.sleep(31)
        nursery.cancel_scope.cancel()
    assert [k for k, _ in fired] == ["a", "b", "c"]
    assert [round(t - start, 6) for _, t in fired] == [2, 5, 30]


async def test_cancel_and_rearm(autojump_clock: trio.abc.Clock) -> None:
    fired: list[tuple[str, float]] = []
    timers = Timers(lambda key: fired.append((key[0], trio.current_time())))
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(timers.run)
        timers.start(("gone", "x"), 1)
        timers.start(("moved", "x"), 1)
        await trio.sleep(0.5)
        timers.cancel(("gone", "x"))
        timers.cancel(("never-armed", "x"))
        timers.start(("moved", "x"), 10)  # re-arm: 10 s from now
        assert timers.deadline(("moved", "x")) == start + 10.5
        await trio.sleep(20)
        nursery.cancel_scope.cancel()
    assert fired == [("moved", start + 10.5)]
    assert len(timers) == 0


async def test_a_firing_may_arm_and_disarm_timers(autojump_clock: trio.abc.Clock) -> None:
    fired: list[str] = []
    timers: Timers

    def fire(key: tuple[str, str]) -> None:
        fired.append(key[0])
        if key[0] == "first":
            timers.cancel(("doomed", "x"))
            timers.start(("chained", "x"), 0)  # due at once: fires in the same pass or next

    timers = Timers(fire)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(timers.run)
        timers.start(("first", "x"), 1)
        timers.start(("doomed", "x"), 1)
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert fired == ["first", "chained"]
