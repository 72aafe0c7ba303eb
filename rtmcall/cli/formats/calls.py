"""Calls (SPEC §6) in words and in JSON: the CallEnded/CallStarted lines, the refuse
reason, the missed-call line, and the table's in-call state. Plain text, no Rich."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rtmcall.engine.codes import CallEndReason
from rtmcall.engine.events import CallEnded, CallStarted

from .rows import Row, short_id
from .states import describe


@dataclass(frozen=True, slots=True)
class MissedCalls:
    """At login: calls missed since the last session (from the history)."""

    count: int
    peers: tuple[str, ...] = ()

    name = "MissedCalls"


def clock(seconds: float) -> str:
    """``01:23``, or ``1:02:03`` past an hour."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


_END_WORDS = {
    CallEndReason.HANGUP_LOCAL: "you hung up",
    CallEndReason.HANGUP_REMOTE: "{peer} hung up",
    CallEndReason.PEER_OFFLINE: "{peer} went offline",
    CallEndReason.SESSION_LOST: "your session ended",
}
#: The table's words for an ended call (short).
_END_SHORT = {
    CallEndReason.HANGUP_LOCAL: "hung up",
    CallEndReason.HANGUP_REMOTE: "peer hung up",
    CallEndReason.PEER_OFFLINE: "peer offline",
    CallEndReason.SESSION_LOST: "session lost",
}


def end_words(reason: CallEndReason, peer: str) -> str:
    return _END_WORDS[reason].format(peer=peer)


def end_short(reason: CallEndReason) -> str:
    return _END_SHORT[reason]


def call_ended_text(ev: CallEnded) -> str:
    call = ev.call
    return (
        f"call {short_id(call.id)} with {call.peer} ended: "
        f"{end_words(ev.reason, call.peer)} ({clock(ev.duration)})"
    )


def call_started_text(ev: CallStarted, *, hints: bool = False) -> str:
    """``hints`` adds what to type (only where someone types)."""
    hint = ", type hangup to end it" if hints else ""
    return f"call {short_id(ev.call.id)} with {ev.call.peer}: in call{hint}"


def missed_text(ev: MissedCalls, *, hints: bool = False) -> str:
    if not ev.count:
        return "no missed calls since your last session"
    who = f" (from {', '.join(ev.peers)})" if ev.peers else ""
    s = "" if ev.count == 1 else "s"
    hint = ": type history" if hints else ""
    return f"{ev.count} missed call{s} since your last session{who}{hint}"


def call_ended_json(ev: CallEnded) -> dict[str, Any]:
    call = ev.call
    return {
        "event": "CallEnded",
        "id": call.id,
        "caller": call.caller,
        "callee": call.callee,
        "reason": ev.reason.name,
        "duration": round(ev.duration, 3),
    }


def call_started_json(ev: CallStarted) -> dict[str, Any]:
    call = ev.call
    return {"event": "CallStarted", "id": call.id, "caller": call.caller, "callee": call.callee}


def missed_json(ev: MissedCalls) -> dict[str, Any]:
    return {"event": "MissedCalls", "count": ev.count, "peers": list(ev.peers)}


def row_state(row: Row, now: float) -> tuple[str, str]:
    """(words, rich style) of a table row: ``in call 01:23`` while its call is on, how the
    call ended after, ``refused: busy`` for a busy refusal, else the invitation's state."""
    if row.call_since is not None:
        return f"in call {clock(now - row.call_since)}", "bold green"
    if row.call_reason is not None:
        return f"ended {clock(row.call_duration)}, {end_short(row.call_reason)}", "green"
    words, style = describe(row.state, row.error)
    if row.reason == "busy" and row.state.name in ("REFUSED", "REFUSED_BY_REMOTE"):
        words = "refused: busy"
    return words, style
