"""Pipe mode: ``rtmcall login USER`` with stdin not a terminal. Commands one per line, events
as they happen (JSON lines with ``--json``). At the end of input, pending outgoing
invitations are canceled, given a bounded time to settle, and the session logs out.

Exit status: 0 when every line did what it said, 1 when any line failed (a line that is not
a command, a command the protocol refused, a ``wait`` that timed out: each reported as an
``Error`` or ``ApiCallError`` event), 3 when the server cannot be reached, refuses the login
or ends the session. An invitation that ends refused, canceled or failed is an outcome, not a
failed line: scripts check the events (or use ``rtmcall call``, whose status is the outcome).
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Callable

import trio

from rtmcall.engine.events import ApiCallError, InvitationInfo

from .control.endpoint import start_control
from .formats import jsonl as jsonfmt
from .runtime import (
    NOT_AS_ASKED,
    OK,
    UNREACHABLE,
    CannotLogIn,
    LoginOptions,
    logged_in,
    stop_on_sigint,
)
from .sinks import JsonSink, TextSink
from .softphone import Softphone


class _Counting:
    """Mixed into a sink: counts the lines that failed (each failed line is reported exactly
    once, as an ``error`` or an ``api_error``), and passes everything on."""

    failures = 0

    def api_error(
        self, exc: ApiCallError, command: str, info: InvitationInfo | None, peer: str | None
    ) -> None:
        self.failures += 1
        super().api_error(exc, command, info, peer)  # type: ignore[misc]

    def error(self, message: str) -> None:
        self.failures += 1
        super().error(message)  # type: ignore[misc]


class _CountingJsonSink(_Counting, JsonSink):
    pass


class _CountingTextSink(_Counting, TextSink):
    pass


async def _lines(fd: int) -> AsyncIterator[str]:
    # A worker thread reads stdin: that works for pipes, files and /dev/null alike, and
    # unlike trio's FdStream it does not make the (possibly shared) descriptor non-blocking.
    # It calls os.read on the descriptor, not sys.stdin: a thread abandoned inside
    # sys.stdin.buffer.readline() holds the buffer's lock, and the interpreter aborts at exit
    # (exit status -6) when it finds that lock taken.
    pending = b""
    while True:
        chunk = await trio.to_thread.run_sync(os.read, fd, 65536, abandon_on_cancel=True)
        if not chunk:
            if pending:
                yield pending.decode("utf-8", errors="replace").rstrip("\r")
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield line.decode("utf-8", errors="replace").rstrip("\r")


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def run_pipe(
    opts: LoginOptions,
    *,
    as_json: bool,
    stdin_fd: int | None = None,
    on_login: Callable[[], None] | None = None,
) -> int:
    """Run pipe mode until the end of input; returns the exit code."""
    sink: _CountingJsonSink | _CountingTextSink = (
        _CountingJsonSink() if as_json else _CountingTextSink()
    )
    try:
        async with logged_in(opts) as client:
            # (client.url: of several nodes given, the one that answered)
            if isinstance(sink, JsonSink):
                sink.emit(jsonfmt.login_success(opts.user, client.url))
            else:
                sink.lines([f"logged in to {client.url} as {opts.user}"])
            if on_login is not None:
                on_login()
            phone = Softphone(client, sink, login_session=True)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(phone.pump)
                # SPEC §7: `rtmcall call/answer` as this user go through us, not a new login.
                control = await start_control(nursery, phone, opts.user, opts.url, warn=_warn)
                with trio.CancelScope() as reading:
                    phone.on_end = reading.cancel
                    nursery.start_soon(stop_on_sigint, reading.cancel)
                    async for line in _lines(sys.stdin.fileno() if stdin_fd is None else stdin_fd):
                        if not await phone.run_line(line):
                            break
                await phone.shutdown()
                if control is not None:
                    await control.aclose()
                nursery.cancel_scope.cancel()
            if phone.ended:
                sink.error(phone.ended)
                return UNREACHABLE
            if sink.failures:
                # stderr, so JSON lines on stdout stay clean; says why the status is 1.
                lines = "line" if sink.failures == 1 else "lines"
                print(
                    f"rtmcall: {sink.failures} command {lines} failed (exit 1)",
                    file=sys.stderr,
                    flush=True,
                )
                return NOT_AS_ASKED
    except CannotLogIn as exc:
        if isinstance(sink, JsonSink):
            sink.emit(jsonfmt.login_failure(opts.user, opts.url, exc.reason, exc.message))
        print(f"rtmcall: {exc.message}", file=sys.stderr, flush=True)
        return UNREACHABLE
    return OK
