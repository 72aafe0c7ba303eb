"""Counting a trio process's wake-ups (``server_proc --wakes FILE``, ``bench/wakes.py``).

A wake-up of a sleeping process costs about as much as the work it wakes for on a small
machine (``bench/README.md``), so the scale-out benchmarks count them: scheduler passes,
waits for I/O that slept, task steps, and what each wake-up ran (the names of the tasks
stepped in its first pass; a timer's task when nothing else was ready). The first SIGUSR1
starts counting, the second writes the counts to FILE as JSON.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from typing import Any

import trio

#: A wait shorter than this did not sleep (the events were ready already).
_SLEPT = 20e-6


class WakeCounter(trio.abc.Instrument):
    def __init__(self, path: str) -> None:
        self.path = path
        self.counting = False
        self.passes = self.wakes = self.steps = 0
        self.causes: Counter[str] = Counter()
        #: Task steps by the task's name.
        self.stepped: Counter[str] = Counter()
        self._waited_at = 0.0
        self._cause: set[str] | None = None

    def install(self) -> None:
        signal.signal(signal.SIGUSR1, self._toggle)

    def _toggle(self, signum: int, frame: Any) -> None:
        if not self.counting:
            self.passes = self.wakes = self.steps = 0
            self.causes.clear()
            self.stepped.clear()
            self.counting = True
            return
        self.counting = False
        data = {"passes": self.passes, "wakes": self.wakes, "steps": self.steps,
                "causes": dict(self.causes.most_common(20)),
                "stepped": dict(self.stepped.most_common(20))}  # fmt: skip
        with open(self.path, "w") as f:
            json.dump(data, f)

    def before_io_wait(self, timeout: float) -> None:
        if not self.counting:
            return
        self.passes += 1
        if self._cause is not None:
            self.causes[" + ".join(sorted(self._cause)) or "(nothing)"] += 1
            self._cause = None
        self._waited_at = time.perf_counter() if timeout > 0 else 0.0

    def after_io_wait(self, timeout: float) -> None:
        if self._waited_at and time.perf_counter() - self._waited_at > _SLEPT:
            self.wakes += 1
            self._cause = set()

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if not self.counting:
            return
        self.steps += 1
        name = task.name.rsplit(".", 1)[-1]
        self.stepped[name] += 1
        if self._cause is not None:
            self._cause.add(name)
