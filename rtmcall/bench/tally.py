"""Shared counters of one bench run: what callers and callees saw, and when.

Which calls are measured:

* duration mode: the calls that *end* inside the window ``[window_start, window_close]``;
  throughput is their number over the window's length. (Counting calls *started* in
  the window would count none at all when a call takes longer than the window, as with
  hundreds of pairs on a small machine.)
* calls mode: the first ``budget`` calls started after the warm-up; throughput is their
  number over the time from the window's start to the end of the last of them.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class Tally:
    """Mutated by every caller and callee task (trio is single-threaded: no locks)."""

    #: Calls may be started while True; cleared when the window (or call budget) is over.
    running: bool = True
    #: perf_counter() at which measurement started; None during warm-up.
    window_start: float | None = None
    #: perf_counter() at which the window closed (duration mode); None while open.
    window_close: float | None = None
    #: perf_counter() at which the last measured call ended.
    window_end: float = 0.0
    #: Measured calls left to start (calls mode); None: run for the duration.
    budget: int | None = None
    #: Every call sent, warm-up included, and the callee side's expected endings.
    placed: int = 0
    callee_done: int = 0
    #: Measured calls that ended as expected on the caller's side.
    handshakes: int = 0
    received: list[float] = field(default_factory=list)
    outcome: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)
    logged_in: int = 0
    login_failed: int = 0

    @property
    def measuring(self) -> bool:
        return self.window_start is not None

    def close_window(self) -> None:
        """Duration mode: the window is over; no new calls start."""
        self.window_close = time.perf_counter()
        self.running = False

    @property
    def elapsed(self) -> float:
        """Length of the measured window, in seconds."""
        start = self.window_start
        if start is None:
            return 0.0
        end = self.window_close if self.window_close is not None else self.window_end
        return max(end - start, 0.0)

    def take_call(self) -> tuple[bool, bool]:
        """May a caller start one more call, and is it measured?"""
        if not self.running:
            return False, False
        if self.window_start is None:
            return True, False
        if self.budget is not None:
            if self.budget <= 0:
                self.running = False
                return False, False
            self.budget -= 1
        return True, True

    def call_ended(self, measured: bool, ok: bool, received: float | None, outcome: float):
        """Record one finished call (latencies in seconds since its send); ``measured``
        is what :meth:`take_call` said when it started."""
        now = time.perf_counter()
        if self.budget is None:
            start, close = self.window_start, self.window_close
            measured = start is not None and now >= start and (close is None or now <= close)
        if not measured:
            return
        self.window_end = max(self.window_end, now)
        if received is not None:
            self.received.append(received)
        if ok:
            self.handshakes += 1
            self.outcome.append(outcome)

    def error(self, kind: str) -> None:
        self.errors[kind] += 1
