"""One-shot ``rtmcall call`` and ``rtmcall answer``: log in, do one job, exit with its outcome.

Both run on :class:`~.softphone.Softphone`, so their output lines (readable or JSON) are the
same as pipe mode's. When a softphone of the same user and server runs (``rtmcall login``
in another terminal), they go through it instead (:mod:`..control`, SPEC §7): logging in
again would kick it off. The job, the lines and the exit codes are the same either way.
"""

from __future__ import annotations

import math
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from rtmcall.engine.codes import REMOTE_TERMINAL, LocalInvitationState, RemoteInvitationState

from .. import commands as c
from ..formats import jsonl as jsonfmt
from ..runtime import (
    NOT_AS_ASKED,
    OK,
    UNREACHABLE,
    CannotLogIn,
    LoginOptions,
    logged_in,
    stop_on_sigint,
)
from ..sinks import JsonSink, Sink, TextSink
from ..softphone import Softphone

#: Said after the banner when a one-shot works through a running softphone.
THROUGH = " (through the softphone logged in in another terminal)"


def _logged_in(sink: Sink, opts: LoginOptions, banner: str | None, phone: Any = None) -> None:
    from ..control.client import RemotePhone

    through = isinstance(phone, RemotePhone)
    if isinstance(sink, JsonSink):
        obj = jsonfmt.login_success(opts.user, opts.url)
        if through:
            obj["via"] = "softphone"
        sink.emit(obj)
    elif banner:
        sink.lines([banner + (THROUGH if through else "")])


@asynccontextmanager
async def _session(
    opts: LoginOptions, sink: Sink, what: str, ignored: Sequence[str] = ()
) -> AsyncIterator[Any]:
    """A phone for the job: the running softphone's (over its control socket) when there
    is one, else our own login. ``ignored`` names flags only our own login can honour."""
    from ..control.client import RemotePhone, SoftphoneRefused, connect

    try:
        link = await connect(opts.user, opts.url, what)
    except SoftphoneRefused as exc:
        raise CannotLogIn(
            f"{opts.user}'s softphone on {opts.url} (rtmcall login in another terminal) "
            f"refused this {what}: {exc}; quit it, or update it to this rtmcall version"
        ) from None
    if link is not None:
        for flag in ignored:
            print(
                f"rtmcall: {flag} is ignored: the softphone's own setting applies",
                file=sys.stderr,
                flush=True,
            )
        yield RemotePhone(*link, sink)
        return
    async with logged_in(opts) as client:
        yield Softphone(client, sink)


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
    hangup_after: float | None = None,
) -> int:
    """Ring ``peers`` and wait for every outcome; 0 only when all accepted (and, with
    ``hangup_after``, every call was held that long and then hung up by us)."""
    sink: Sink = JsonSink() if as_json else TextSink()
    held = False
    ignored = [f for f, v in (("--no-response-timeout", opts.no_response_timeout),) if v]
    try:
        async with _session(opts, sink, "call", ignored) as phone:
            # Always say who calls: the user may come from the remembered login.
            _logged_in(sink, opts, f"{opts.user} → {', '.join(peers)}", phone)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(phone.pump)
                with trio.CancelScope() as waiting:
                    phone.on_end = waiting.cancel
                    nursery.start_soon(stop_on_sigint, waiting.cancel)
                    await phone.execute(c.Call(tuple(peers), content, channel, lifetime))
                    while phone.pending_outgoing():
                        await phone.wait_change()
                    if hangup_after is not None:
                        from .hold import hold_and_hang_up

                        ids = [i.id for i in phone.infos() if i.direction == "out"]
                        held = await hold_and_hang_up(phone, ids, hangup_after)
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
        if hangup_after is None or held:
            return OK
    return NOT_AS_ASKED


def _gave_up(after: float | None, answered: int, count: int) -> str:
    """Why ``answer --timeout`` exits 1, in words."""
    if answered == 0:
        return f"no call within {after:g} s"
    if count and answered >= count:
        return f"the answered calls had not ended within {after:g} s"
    wanted = f" of {count}" if count else ""
    calls = "call" if answered == 1 else "calls"
    return f"answered {answered}{wanted} {calls} within {after:g} s, then gave up"


def _ringing_here(phone: Softphone, skip: list[str]) -> list[str]:
    """Ids of incoming invitations that ring now and are not in ``skip``."""
    return [
        i.id
        for i in phone.infos()
        if i.direction == "in"
        and i.state == RemoteInvitationState.INVITATION_RECEIVED
        and i.id not in skip
    ]


def _all_ended(phone: Softphone, ids: list[str]) -> bool:
    return all(i.state in REMOTE_TERMINAL for i in phone.infos() if i.id in ids)


async def run_answer(
    opts: LoginOptions,
    *,
    accept: bool = True,
    response: str = "",
    count: int = 1,
    delay: float = 0.0,
    give_up_after: float | None = None,
    as_json: bool = False,
    hangup_after: float | None = None,
) -> int:
    """Answer ``count`` incoming calls (0: until interrupted); 0 when each ended as asked
    (with ``hangup_after``: each accepted call held that long, then hung up by us)."""
    sink: Sink = JsonSink() if as_json else TextSink()
    want = RemoteInvitationState.ACCEPTED if accept else RemoteInvitationState.REFUSED
    answered: list[str] = []
    not_held: list[str] = []
    enough = (lambda: False) if count == 0 else (lambda: len(answered) >= count)
    ignored = [f for f, v in (("--confirm-timeout", opts.confirm_timeout),) if v]
    try:
        async with _session(opts, sink, "answer", ignored) as phone:
            _logged_in(sink, opts, f"{opts.user} waits for calls on {opts.url}", phone)
            if hasattr(phone, "watch_incoming"):
                await phone.watch_incoming()

            async def answer_one(inv_id: str) -> None:
                await trio.sleep(delay)  # let it ring a while, if asked to
                cmd = c.Accept(inv_id, response) if accept else c.Refuse(inv_id, response)
                await phone.execute(cmd)
                if hangup_after is not None and accept:
                    from .hold import hold_and_hang_up

                    while not _all_ended(phone, [inv_id]):
                        await phone.wait_change()
                    if not await hold_and_hang_up(phone, [inv_id], hangup_after):
                        not_held.append(inv_id)

            async def answer_all() -> None:
                # One task per call, so several ringing at once are answered at once.
                async with trio.open_nursery() as answering:
                    while not enough():
                        for inv_id in _ringing_here(phone, answered):
                            if not enough():
                                answered.append(inv_id)
                                answering.start_soon(answer_one, inv_id)
                        if not enough():
                            await phone.wait_change()
                # An accept is done only when the caller confirmed (or it failed).
                while not _all_ended(phone, answered):
                    await phone.wait_change()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(phone.pump)
                with trio.CancelScope() as waiting:
                    phone.on_end = waiting.cancel
                    nursery.start_soon(stop_on_sigint, waiting.cancel)
                    with trio.move_on_after(
                        math.inf if give_up_after is None else give_up_after
                    ) as giving_up:
                        await answer_all()
                    if giving_up.cancelled_caught:
                        sink.error(_gave_up(give_up_after, len(answered), count))
                await phone.shutdown()
                nursery.cancel_scope.cancel()
    except CannotLogIn as exc:
        return _fail_login(sink, opts, exc)
    if phone.ended is not None:
        sink.error(phone.ended)
        return UNREACHABLE
    done = {i.id: i.state for i in phone.infos() if i.direction == "in"}
    if count and enough() and all(done.get(k) == want for k in answered) and not not_held:
        return OK
    return NOT_AS_ASKED
