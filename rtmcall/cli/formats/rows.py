"""A row of the invitation table: plain data, without Rich, so pipe mode and the one-shot
commands (which never draw a table) do not pay for importing it."""

from __future__ import annotations

from dataclasses import dataclass

from rtmcall.engine.codes import (
    CallEndReason,
    LocalInvitationError,
    LocalInvitationState,
    RemoteInvitationError,
    RemoteInvitationState,
)
from rtmcall.engine.events import InvitationInfo

SHORT_ID = 6


def short_id(invitation_id: str) -> str:
    return invitation_id[:SHORT_ID]


@dataclass(frozen=True, slots=True)
class Row:
    """One invitation as the table shows it."""

    id: str
    direction: str  # "out" or "in"
    peer: str
    state: LocalInvitationState | RemoteInvitationState
    error: LocalInvitationError | RemoteInvitationError
    content: str = ""
    channel_id: str = ""
    response: str = ""
    #: When the running timer fires, in the caller's time base; None when none runs.
    deadline: float | None = None
    live: bool = True
    #: Why it was refused (``busy``, ``declined``), when refused.
    reason: str = ""
    #: SPEC §6: when its call started, in the deadline's time base, while the call is on.
    call_since: float | None = None
    #: Once its call ended: why, and how long it lasted.
    call_reason: CallEndReason | None = None
    call_duration: float = 0.0
    #: Sent to a callee who is offline: it rings if the callee logs in before the deadline.
    waiting_for_peer: bool = False

    @classmethod
    def from_info(
        cls,
        info: InvitationInfo,
        *,
        deadline: float | None = None,
        live: bool = True,
        call_since: float | None = None,
        call_reason: CallEndReason | None = None,
        call_duration: float = 0.0,
    ) -> Row:
        return cls(
            id=info.id,
            direction=info.direction,
            peer=info.peer,
            state=info.state,
            error=info.error,
            content=info.content,
            channel_id=info.channel_id,
            response=info.response,
            deadline=deadline if live else None,
            live=live or call_since is not None,
            reason=info.reason,
            call_since=call_since,
            call_reason=call_reason,
            call_duration=call_duration,
        )
