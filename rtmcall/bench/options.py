"""What a bench run does: :class:`BenchOptions` (stdlib only, cheap to import)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: accept: callee accepts (full three-way handshake); refuse: callee refuses; cancel: the
#: caller cancels once the callee's ACK arrived (the callee never answers).
Mode = Literal["accept", "refuse", "cancel"]
MODES: tuple[Mode, ...] = ("accept", "refuse", "cancel")


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """One bench run.

    Attributes:
      server: ``ws://…`` of the server to load; None starts a server subprocess
        (``python -m rtmcall.bench.server_proc``), so its CPU time is its own.
      pairs: concurrent caller/callee pairs; each pair has one invitation in flight.
      duration: seconds to measure for (after the warm-up). Ignored when ``calls`` is set.
      calls: total invitations to place instead of a duration (spread over the pairs).
      mode: what the callee does (see :data:`Mode`).
      idle: extra logged-in users that do nothing but keep their session alive.
      rate: offered load in invitations/s over all pairs (each pair paced evenly);
        None: closed loop, every caller calls again as soon as its last call ended.
      warmup: seconds of load before measuring starts (not counted anywhere).
      content: the invitation content sent with every call.
      server_pid: pid of the server process, to report its CPU per handshake (needs
        psutil); set automatically for the embedded server.
      prefix: user ids are ``{prefix}{run}-c{i}`` / ``-e{i}``; the run part is random so
        that two benches against one server do not kick each other's users.
      idle_sdk: idle users are full SDK clients (True) or lean clients speaking the same
        protocol (login, heartbeat pings) at a fraction of the load generator's CPU.
      timeout: hard bound on the whole run, in seconds, on top of duration and warm-up.
    """

    server: str | None = None
    pairs: int = 10
    duration: float = 5.0
    calls: int | None = None
    mode: Mode = "accept"
    idle: int = 0
    rate: float | None = None
    warmup: float = 0.0
    content: str = "bench"
    server_pid: int | None = None
    prefix: str = "bench"
    idle_sdk: bool = True
    timeout: float = 120.0

    def problem(self) -> str | None:
        """Why these options cannot run, in words; None when they can."""
        if self.pairs < 1:
            return "pairs must be at least 1"
        if self.calls is None and not self.duration > 0:
            return "duration must be positive (or give calls)"
        if self.calls is not None and self.calls < 1:
            return "calls must be at least 1"
        if self.mode not in MODES:
            return f"mode must be one of {', '.join(MODES)}"
        if self.idle < 0:
            return "idle must be 0 or more"
        if self.rate is not None and not self.rate > 0:
            return "rate must be positive"
        if self.warmup < 0:
            return "warmup must be 0 or more"
        return None
