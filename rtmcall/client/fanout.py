"""Event fan-out: every subscriber gets every event published after it subscribed.

A subscriber is a trio memory channel with a bounded buffer. Publishing never blocks: when a
subscriber's buffer is full (it stopped reading), the event is dropped *for that subscriber
only* and counted, so one slow reader can neither stall the client nor grow its memory
without bound. A subscriber that closed its receiving end is forgotten.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import trio

from .events import ClientEvent

log = logging.getLogger("rtmcall.client")


@dataclass(eq=False)
class _Subscriber:
    send: trio.MemorySendChannel[ClientEvent]
    dropped: int = 0


@dataclass(eq=False)
class EventFanout:
    """Args:
    buffer: events buffered per subscriber before new ones are dropped for it.
    """

    buffer: int = 10_000
    #: Events dropped, over all subscribers.
    dropped: int = 0
    _subs: list[_Subscriber] = field(default_factory=list)
    _closed: bool = False

    def subscribe(self, buffer: int | None = None) -> trio.MemoryReceiveChannel[ClientEvent]:
        """A new subscription. Use ``async with sub: async for ev in sub: ...``; it ends when
        the client exits."""
        send, receive = trio.open_memory_channel[ClientEvent](
            self.buffer if buffer is None else buffer
        )
        if self._closed:
            send.close()
        else:
            self._subs.append(_Subscriber(send))
        return receive

    def publish(self, event: ClientEvent) -> None:
        for sub in list(self._subs):
            try:
                sub.send.send_nowait(event)
            except trio.WouldBlock:
                sub.dropped += 1
                self.dropped += 1
                if sub.dropped == 1:
                    log.warning("an event subscriber is not reading; dropping events for it")
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subs.remove(sub)

    def close(self) -> None:
        """End every subscription (readers still get what is buffered, then the end)."""
        self._closed = True
        for sub in self._subs:
            sub.send.close()
        self._subs.clear()

    @property
    def subscribers(self) -> int:
        return len(self._subs)
