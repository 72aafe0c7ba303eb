"""What a bench run measured: :class:`BenchResult` (stdlib only, cheap to import)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (``q`` in 0..100); NaN if empty."""
    if not ordered:
        return math.nan
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Latency percentiles of one measured interval, in milliseconds."""

    count: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> LatencyStats:
        ordered = sorted(seconds)
        ms = 1000.0
        mean = sum(ordered) / len(ordered) if ordered else math.nan
        return cls(
            count=len(ordered),
            p50=percentile(ordered, 50) * ms,
            p90=percentile(ordered, 90) * ms,
            p99=percentile(ordered, 99) * ms,
            max=(ordered[-1] if ordered else math.nan) * ms,
            mean=mean * ms,
        )


#: The caller's final event expected in each mode, and the callee's.
EXPECTED_OUTCOME = {
    "accept": ("LocalInvitationAccepted", "RemoteInvitationAccepted"),
    "refuse": ("LocalInvitationRefused", "RemoteInvitationRefused"),
    "cancel": ("LocalInvitationCanceled", "RemoteInvitationCanceled"),
}


@dataclass(slots=True)
class BenchResult:
    """The outcome of :func:`rtmcall.bench.run_bench`.

    Latencies are measured at the caller from just before ``send`` to the event:
    ``received_by_peer`` (LocalInvitationReceivedByPeer) and ``outcome`` (Accepted,
    Refused or Canceled, by mode). With a duration, the calls that *ended* inside the
    measured window count; with a number of calls, the first that many started after the
    warm-up (see :mod:`rtmcall.bench.tally`). Warm-up calls never count.
    """

    server: str
    embedded: bool
    pairs: int
    mode: str
    idle: int
    rate: float | None
    #: Seconds of the measured window (calls mode: until the last counted call's end).
    elapsed: float
    #: Calls that ended in the expected outcome on both sides, inside the window.
    handshakes: int
    handshakes_per_s: float
    received_by_peer: LatencyStats
    outcome: LatencyStats
    #: Errors by kind: exceptions, connection drops, dropped events, calls left unfinished.
    errors: dict[str, int] = field(default_factory=dict)
    #: Final events that were not the expected one, by event name (and error name).
    unexpected: dict[str, int] = field(default_factory=dict)
    #: Seconds to log every user in (pairs and idle users).
    login_s: float = 0.0
    #: Server process CPU (user+system) over the measured window (calls mode: until the
    #: callees saw the last call end), when its pid is known.
    server_cpu_s: float | None = None
    server_cpu_us_per_handshake: float | None = None
    #: The server process's resident memory at the end, in bytes (pid known only).
    server_rss: int | None = None

    @property
    def ok(self) -> bool:
        """No errors and no unexpected outcomes (what CI checks)."""
        return not self.errors and not self.unexpected

    @property
    def outcome_name(self) -> str:
        return {"accept": "accepted", "refuse": "refused", "cancel": "canceled"}[self.mode]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def to_json(self, indent: int | None = 2) -> str:
        """The result as JSON (NaN, for an empty interval, becomes null)."""
        return json.dumps(_nan_to_none(self.to_dict()), indent=indent)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value
