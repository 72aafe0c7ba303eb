"""How long to wait before each reconnect attempt: a quick first retry, then jittered
exponential backoff, short while an outage is young and longer once it has lasted.

Pure logic (no clock, no I/O): the transport asks for the next delay, giving how long the
connection has been down. The shape, after AWS's "Exponential Backoff and Jitter" and
what phone apps do (a dropped call retries at once):

* the **first retry** comes after a random 0-``first`` s: most drops are a blip, or a
  server restarting (its clients then come back spread over that interval, not at once);
* then ``base`` s doubling up to ``cap`` (the ceiling while the outage is young), each
  delay a random 50-100 % of the nominal ("equal jitter": never two clients in lockstep,
  never much faster than planned);
* once the connection has been down for ``patient_after`` s, the ceiling is
  ``patient_cap``: a long outage is not hammered.

With the defaults (0.25, 0.25, 1.5, 60, 5) a server that is back after an outage of less
than a minute is tried within 1.5 s; see ``ClientConfig``. The transport keeps one
``Backoff`` across connections that drop soon after logging in
(``transport.STABLE_CONNECTION``), so a server that drops every login is not retried
quickly each time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """The delays of one outage; make a new one for each."""

    first: float = 0.25
    base: float = 0.25
    cap: float = 1.5
    patient_after: float = 60.0
    patient_cap: float = 5.0
    rng: random.Random = field(default_factory=random.Random)
    #: Attempts planned so far.
    attempts: int = 0

    def next_delay(self, down_for: float) -> float:
        """Seconds to wait before the next attempt, ``down_for`` s into the outage."""
        self.attempts += 1
        if self.attempts == 1:
            return self.rng.uniform(0.0, self.first)
        ceiling = self.cap if down_for < self.patient_after else self.patient_cap
        nominal = min(self.base * 2 ** (self.attempts - 2), ceiling)
        return nominal * self.rng.uniform(0.5, 1.0)
