"""The call log: one JSON line per invitation when it ends (``--call-log FILE|-``).

Each line is :meth:`~.observer.InvitationRecord.as_dict` (id, caller, callee, nodes,
sent/ringing/answered/ended times, outcome, errors, reason, response, setup time, and for
an accepted invitation the call's end time, duration and how it ended), written and
flushed at once. An accepted invitation's line is written when its call ends (its
``call_ended`` event), every other one when the invitation ends. A file is rotated by
size the way ``logging``'s RotatingFileHandler does (``FILE`` → ``FILE.1`` → … →
``FILE.<backups>``, the oldest dropped).

Error handling: a file that cannot be opened or written costs one warning (and another
once it works again); the server keeps serving, lines are counted as ``errors``, and the
log retries on the next line.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import BinaryIO

import msgspec

from .observer import InvitationRecord, Outcome

log = logging.getLogger("rtmcall.server")

_encoder = msgspec.json.Encoder()


class CallLog:
    def __init__(self, target: str, *, max_bytes: int = 100 * 1024 * 1024, backups: int = 5):
        self.target = target
        self.max_bytes = max_bytes
        self.backups = backups
        self.lines = 0
        self.errors = 0
        self._file: BinaryIO | None = None
        self._failing = False
        if target != "-":
            self._open()

    def invitation_event(self, kind: str, record: InvitationRecord) -> None:
        if kind == "call_ended" or (kind == "ended" and record.outcome is not Outcome.ACCEPTED):
            self.write(record.as_dict())

    def write(self, entry: dict[str, object]) -> None:
        line = _encoder.encode(entry) + b"\n"
        try:
            if self.target == "-":
                sys.stdout.flush()  # (after anything printed as text before)
                sys.stdout.buffer.write(line)
                sys.stdout.buffer.flush()
            else:
                out = self._file or self._open()
                if out is None:
                    self.errors += 1
                    return
                out.write(line)
                out.flush()
                if self.max_bytes and out.tell() >= self.max_bytes:
                    self._rotate()
        except (OSError, ValueError) as exc:
            self.errors += 1
            self._close()
            self._warn(exc)
            return
        self.lines += 1
        if self._failing:
            self._failing = False
            log.warning("call log %s: writing again", self.target)

    def close(self) -> None:
        self._close()

    def _open(self) -> BinaryIO | None:
        try:
            self._file = open(self.target, "ab")  # noqa: SIM115 - kept open
        except OSError as exc:
            self._warn(exc)
            return None
        return self._file

    def _rotate(self) -> None:
        self._close()
        if self.backups > 0:
            for i in range(self.backups - 1, 0, -1):
                older = f"{self.target}.{i}"
                if os.path.exists(older):
                    os.replace(older, f"{self.target}.{i + 1}")
            os.replace(self.target, f"{self.target}.1")
        else:
            os.truncate(self.target, 0)
        self._open()

    def _close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None

    def _warn(self, exc: BaseException) -> None:
        if not self._failing:
            self._failing = True
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            log.warning(
                "call log %s cannot be written (%s); serving on, lines are lost until it can",
                self.target,
                why,
            )
