"""``--hangup-after S`` of the one-shot ``rtmcall call`` and ``rtmcall answer`` (SPEC §6): hold
accepted calls for S seconds, then hang them up; the exit status says whether that went as
asked (every call was still on until then, and ended with our hang-up)."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from rtmcall.engine.codes import CallEndReason

from .. import commands as c
from ..control.client import RemotePhone
from ..softphone import Softphone


async def hold_and_hang_up(
    phone: Softphone | RemotePhone, ids: Sequence[str], seconds: float
) -> bool:
    """Hold the calls ``ids`` for ``seconds``, then hang up those still on. True when every
    one was on (a call) until then and ended with HANGUP_LOCAL. (Standalone or through a
    running softphone: both keep ``calls`` by invitation id.)"""
    calls = phone.calls

    def all_on() -> bool:
        return all(i in calls and calls[i].active for i in ids)

    if not ids or not all_on():
        return False
    with trio.move_on_after(seconds) as holding:
        while all_on():
            await phone.wait_change()
    # (Ended before: by the peer, or through a softphone by its user or its quitting.)
    held = holding.cancelled_caught
    for i in ids:
        if calls[i].active:
            await phone.execute(c.Hangup(i))
    with trio.move_on_after(3):  # (through a softphone, its CallEnded follows)
        while any(calls[i].active for i in ids):
            await phone.wait_change()
    return held and all(calls[i].reason is CallEndReason.HANGUP_LOCAL for i in ids)
