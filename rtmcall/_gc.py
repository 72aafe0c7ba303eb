"""Garbage-collector settings for rtmcall's long-running processes (``rtmcall server``, the
bench's server and load generator).

CPython's cyclic collector runs its youngest generation every 700 *net* container
allocations and promotes what survives. A server holding thousands of idle connections
allocates a few objects per wake-up (the frames and closures of tasks that go back to
waiting on a socket) that then live until the next heartbeat: they survive, are promoted,
and every few seconds a full collection walks every object of every connection (~150
each). Measured with 5,000 idle users (``bench/README.md``): a full collection took
~0.5 s, and collections ~40 % of the server's CPU; with a first generation of 50,000
allocations, none ran in steady state. ``gc.freeze()`` also moves everything that exists
at start-up (modules, classes) out of the collector's sight for good.
"""

from __future__ import annotations

import gc

#: Net container allocations between collections of the youngest generation (default 700).
GEN0_THRESHOLD = 50_000


def tune_for_long_running() -> None:
    """Call once, after imports and before the event loop starts."""
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
