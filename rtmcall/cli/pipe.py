"""Pipe mode: ``rtmcall login USER`` with stdin not a terminal. Commands one per line, events
as they happen (JSON lines with ``--json``). At the end of input, pending outgoing
invitations are canceled, given a bounded time to settle, and the session logs out.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import BinaryIO

import trio

from . import jsonfmt
from .runtime import OK, UNREACHABLE, CannotLogIn, LoginOptions, logged_in, stop_on_sigint
from .sinks import JsonSink, Sink, TextSink
from .softphone import Softphone


async def _lines(stream: BinaryIO) -> AsyncIterator[str]:
    # A worker thread reads stdin: it works for pipes, files and /dev/null alike, and unlike
    # trio's FdStream it does not make the (possibly shared) descriptor non-blocking.
    while True:
        raw = await trio.to_thread.run_sync(stream.readline, abandon_on_cancel=True)
        if not raw:
            return
        yield raw.decode("utf-8", errors="replace").rstrip("\r\n")


async def run_pipe(
    opts: LoginOptions, *, as_json: bool, stdin: BinaryIO | None = None, on_login=None
) -> int:
    """Run pipe mode until the end of input; returns the exit code."""
    sink: Sink = JsonSink() if as_json else TextSink()
    try:
        async with logged_in(opts) as client:
            if isinstance(sink, JsonSink):
                sink.emit(jsonfmt.login_success(opts.user, opts.url))
            else:
                sink.lines([f"logged in to {opts.url} as {opts.user}"])
            if on_login is not None:
                on_login()
            phone = Softphone(client, sink)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(phone.pump)
                with trio.CancelScope() as reading:
                    phone.on_end = reading.cancel
                    nursery.start_soon(stop_on_sigint, reading.cancel)
                    async for line in _lines(stdin or sys.stdin.buffer):
                        if not await phone.run_line(line):
                            break
                await phone.shutdown()
                nursery.cancel_scope.cancel()
            if phone.ended:
                sink.error(phone.ended)
                return UNREACHABLE
    except CannotLogIn as exc:
        if isinstance(sink, JsonSink):
            sink.emit(jsonfmt.login_failure(opts.user, opts.url, exc.reason, exc.message))
        print(f"rtmcall: {exc.message}", file=sys.stderr, flush=True)
        return UNREACHABLE
    return OK
