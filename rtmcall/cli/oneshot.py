"""One-shot ``rtmcall call`` and ``rtmcall answer``: log in, do one job, exit with its outcome.

Both run on :class:`~.softphone.Softphone`, so their output lines (readable or JSON) are the
same as pipe mode's.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import trio

from rtmcall.engine.codes import REMOTE_TERMINAL, LocalInvitationState, RemoteInvitationState

from . import commands as c
from . import jsonfmt
from .runtime import (
    NOT_AS_ASKED,
    OK,
    UNREACHABLE,
    CannotLogIn,
    LoginOptions,
    logged_in,
    stop_on_sigint,
)
from .sinks import JsonSink, Sink, TextSink
from .softphone import Softphone


def _logged_in(sink: Sink, opts: LoginOptions, banner: str | None) -> None:
    if isinstance(sink, JsonSink):
        sink.emit(jsonfmt.login_success(opts.user, opts.url))
    elif banner:
        sink.lines([banner])


def _fail_login(sink: Sink, opts: LoginOptions, exc: CannotLogIn) -> int:
    if isinstance(sink, JsonSink):
        sink.emit(jsonfmt.login_failure(opts.user, opts.url, exc.reason, exc.message))
    print(f"rtmcall: {exc.message}", file=sys.stderr, flush=True)
    return UNREACHABLE


async def run_call(
    opts: LoginOptions,
    peers: Sequence[str],
    *,
    content: str = "",
    channel: str = "",
    lifetime: float | None = None,
    as_json: bool = False,
) -> int:
    """Ring ``peers`` and wait for every outcome; 0 only when all accepted."""
    sink: Sink = JsonSink() if as_json else TextSink()
    try:
        async with logged_in(opts) as client:
            phone = Softphone(client, sink)
            _logged_in(sink, opts, None)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(phone.pump)
                with trio.CancelScope() as waiting:
                    phone.on_end = waiting.cancel
                    nursery.start_soon(stop_on_sigint, waiting.cancel)
                    await phone.execute(c.Call(tuple(peers), content, channel, lifetime))
                    while phone.pending_outgoing():
                        await phone.wait_change()
                interrupted = waiting.cancelled_caught
                await phone.shutdown()  # cancels what still rings (after Ctrl-C)
                nursery.cancel_scope.cancel()
    except CannotLogIn as exc:
        return _fail_login(sink, opts, exc)
    if phone.ended is not None:
        sink.error(phone.ended)
        return UNREACHABLE
    outgoing = [i for i in phone.infos() if i.direction == "out"]
    accepted = [i for i in outgoing if i.state == LocalInvitationState.ACCEPTED_BY_REMOTE]
    if not interrupted and outgoing and len(accepted) == len(peers):
        return OK
    return NOT_AS_ASKED


async def run_answer(
    opts: LoginOptions,
    *,
    accept: bool = True,
    response: str = "",
    count: int = 1,
    delay: float = 0.0,
    give_up_after: float | None = None,
    as_json: bool = False,
) -> int:
    """Answer ``count`` incoming calls (0: until interrupted); 0 when each ended as asked."""
    sink: Sink = JsonSink() if as_json else TextSink()
    want = RemoteInvitationState.ACCEPTED if accept else RemoteInvitationState.REFUSED
    answered: list[str] = []
    try:
        async with logged_in(opts) as client:
            phone = Softphone(client, sink)
            _logged_in(sink, opts, f"{opts.user} waits for calls on {opts.url}")

            async def answer_one(inv_id: str) -> None:
                await trio.sleep(delay)
                cmd = c.Accept(inv_id, response) if accept else c.Refuse(inv_id, response)
                await phone.execute(cmd)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(phone.pump)
                with trio.CancelScope() as waiting:
                    phone.on_end = waiting.cancel
                    nursery.start_soon(stop_on_sigint, waiting.cancel)
                    with trio.move_on_after(math.inf if give_up_after is None else give_up_after):
                        async with trio.open_nursery() as answering:
                            while count == 0 or len(answered) < count:
                                for info in phone.infos():
                                    ringing = (
                                        info.state == RemoteInvitationState.INVITATION_RECEIVED
                                    )
                                    if (
                                        info.direction == "in"
                                        and ringing
                                        and info.id not in answered
                                    ):
                                        if count and len(answered) >= count:
                                            break
                                        answered.append(info.id)
                                        answering.start_soon(answer_one, info.id)
                                if count == 0 or len(answered) < count:
                                    await phone.wait_change()
                            # Let the answers finish (an accept needs the caller's confirm).
                            while any(
                                i.direction == "in" and i.id in answered and not _ended(i.state)
                                for i in phone.infos()
                            ):
                                await phone.wait_change()
                await phone.shutdown()
                nursery.cancel_scope.cancel()
    except CannotLogIn as exc:
        return _fail_login(sink, opts, exc)
    if phone.ended is not None:
        sink.error(phone.ended)
        return UNREACHABLE
    done = {i.id: i.state for i in phone.infos() if i.direction == "in"}
    if count and len(answered) >= count and all(done.get(k) == want for k in answered):
        return OK
    return NOT_AS_ASKED


def _ended(state: RemoteInvitationState) -> bool:
    return state in REMOTE_TERMINAL
