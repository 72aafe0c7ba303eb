"""Driving ``rtmcall`` subprocesses from tests: a JSON-lines pipe with a reader thread, so
every wait has a timeout and a hung process fails the test instead of hanging it."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import REPO, RTMCALL, cli_env, kill

JsonObj = dict[str, Any]


class Pipe:
    """``rtmcall ARGS`` with stdin and stdout as pipes; stdout lines collected as they come."""

    def __init__(self, args: list[str], config: Path, **env: str) -> None:
        self.proc = subprocess.Popen(
            [*RTMCALL, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(config, **env),
            cwd=REPO,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._seen = 0  # lines already handed out by next()/expect()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close_input(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def _pull(self, deadline: float) -> str | None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        item = self._queue.get(timeout=left)
        if item is not None:
            self.lines.append(item)
        return item

    def expect_line(self, pred: Callable[[str], bool], timeout: float = 5.0) -> str:
        """The first not-yet-seen line that satisfies ``pred`` (earlier ones are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            while self._seen < len(self.lines):
                line = self.lines[self._seen]
                self._seen += 1
                if pred(line):
                    return line
            try:
                if self._pull(deadline) is None:
                    raise AssertionError(f"ended without the line; got {self.lines}")
            except (TimeoutError, queue.Empty):
                raise AssertionError(f"timed out; got {self.lines}") from None

    def expect(self, event: str, timeout: float = 5.0, **match: Any) -> JsonObj:
        """The next JSON line with this ``event`` (and these values)."""

        def pred(line: str) -> bool:
            obj = json.loads(line)
            return obj.get("event") == event and all(obj.get(k) == v for k, v in match.items())

        return json.loads(self.expect_line(pred, timeout))

    def finish(self, timeout: float = 10.0) -> int:
        """Close stdin, wait for the exit, collect the rest of stdout; the exit code."""
        if self.proc.stdin and not self.proc.stdin.closed:
            self.close_input()
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        while not self._queue.empty():
            item = self._queue.get()
            if item is not None:
                self.lines.append(item)
        return code

    def json_lines(self) -> list[JsonObj]:
        return [json.loads(line) for line in self.lines]

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def kill(self) -> None:
        kill(self.proc)
