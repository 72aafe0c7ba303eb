"""What runs around trio's wait for I/O in a node of several: the outbox's flush just
before it (every record a wake-up queued goes out in one write per receiving node) and,
just after it, the watchdog's tick when one is nearly due (so that the tick rides on a
wake-up that happens anyway). A wake-up costs more than the write itself on a small
machine: ``bench/README.md``, "Scale-out"."""

from __future__ import annotations

import contextlib
import logging

import trio

from .outbox import Outbox

log = logging.getLogger("rtmcall.server.redis")

#: A tick may run this part of its interval early, with a wake-up that happens anyway.
TICK_EARLY = 0.3
#: Queued records go out before trio next sleeps, or after waiting this long (s) in a
#: process too busy to sleep.
FLUSH_WITHIN = 0.001


class Ticker:
    """The watchdog's tick: :meth:`wait` returns when its interval is over, or from the
    last :data:`TICK_EARLY` part of it on, with the next wake-up of the process
    (:class:`PassEnd` sees it)."""

    def __init__(self) -> None:
        self._waiter: trio.Event | None = None
        #: When the tick is due, and from when it may run early (trio time).
        self._at = self._from = 0.0
        #: The ticks, and those that ran early with another wake-up.
        self.ticks = 0
        self.early = 0

    async def wait(self, interval: float) -> None:
        now = trio.current_time()
        self._at = now + interval
        self._from = now + interval * (1 - TICK_EARLY)
        self._waiter = waiter = trio.Event()
        with trio.move_on_at(self._at):
            await waiter.wait()
        self._waiter = None
        self.ticks += 1

    def ride(self) -> None:
        """After a wait for I/O: start the tick now if it is nearly due (a task made
        runnable there runs in that very pass)."""
        waiter = self._waiter
        if waiter is not None:
            now = trio.current_time()
            if now >= self._from:
                self._waiter = None
                if now < self._at:
                    self.early += 1
                waiter.set()


class PassEnd(trio.abc.Instrument):
    """Calls the outbox's flush just before trio waits for I/O: every record queued by the
    tasks that ran goes out in one write per receiving node, and no task switch is spent on
    it.

    Only before a wait that may sleep (``timeout > 0``), or once what is queued has waited
    :data:`FLUSH_WITHIN` s: the passes of one wake-up (a reader, then the writer it woke,
    then the next frame of the same read...) share one batch, so the receiving node is
    woken once for them rather than once per pass.

    The flush must not make a task runnable (trio has computed its I/O timeout already):
    it only writes to a socket; the rare follow-ups (a write that did not fit, an error)
    are picked up by the hub's tasks within their next tick. After the wait, it may: the
    :class:`Ticker`'s tick starts there when it is nearly due."""

    def __init__(self, outbox: Outbox, ticker: Ticker, node_id: str) -> None:
        self.outbox = outbox
        self.ticker = ticker
        self.node_id = node_id

    def after_io_wait(self, timeout: float) -> None:
        self.ticker.ride()

    def before_io_wait(self, timeout: float) -> None:
        outbox = self.outbox
        if outbox.out and (timeout > 0 or trio.current_time() - outbox.out_since >= FLUSH_WITHIN):
            try:
                if not outbox.retry:
                    outbox.flush()
                elif outbox.take_links is not None:
                    outbox.take_links()  # (Redis writes wait for the flusher's retry)
            except Exception:  # noqa: BLE001 - an instrument that raises is removed
                log.exception("node %s: flush failed", self.node_id)


async def installed(
    outbox: Outbox,
    ticker: Ticker,
    node_id: str,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a :class:`PassEnd` in this trio run until cancelled (the outbox's own flusher
    then writes what is queued)."""
    instrument = PassEnd(outbox, ticker, node_id)
    trio.lowlevel.add_instrument(instrument)
    outbox.at_pass_end = True
    try:
        task_status.started()
        await trio.sleep_forever()
    finally:
        with contextlib.suppress(KeyError):
            trio.lowlevel.remove_instrument(instrument)
        outbox.at_pass_end = False
