"""A session's state as bytes, so that another node can resume it (resume on any node).

What travels: the id, the Deliver numbering (``seq``) and the unacknowledged frames, the
frames queued while detached, the Send answers remembered for repeats (with the
generation they belong to), the watched users, and the invitations and calls the old
node observed with the session as their caller (so that their end is logged, once, by
the new node). What does not: the token deadline (the
resuming Login carries its own token) and the connection (there is none: the client is
logging in on the new node).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

import msgspec

from ..config import ServerConfig
from ..session import Session


class _State(msgspec.Struct, array_like=True):
    user: str
    id: str
    seq: int
    last_rid: int
    generation: int
    unacked: list[tuple[int, str]]
    #: Queued frames that are not in ``unacked`` (Results, presence pushes), in order.
    others: list[str]
    answered: list[tuple[int, int, str]]
    subscriptions: list[str]
    #: The invitations and calls the old node observed with this session as the caller
    #: (its call log's and webhooks' records, :meth:`.observer.InvitationObserver.adopt`).
    observed: list[dict[str, Any]] = msgspec.field(default_factory=list)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_State)


def snapshot(session: Session, observed: list[dict[str, Any]] | None = None) -> bytes:
    """The session's state (no raw newline or tab in it: JSON escapes them)."""
    unacked = list(session.unacked or ())
    numbered = {id(data) for _, data in unacked}
    others = [d.decode() for d in session.outbox if id(d) not in numbered]
    answered = [
        (rid, gen, result.decode()) for rid, (gen, result) in (session.answered or {}).items()
    ]
    state = _State(
        user=session.user,
        id=session.id,
        seq=session.seq,
        last_rid=session.last_rid,
        generation=session.generation,
        unacked=[(seq, data.decode()) for seq, data in unacked],
        others=others,
        answered=answered,
        subscriptions=sorted(session.subscriptions),
        observed=observed or [],
    )
    return _encoder.encode(state)


def restore(data: bytes, config: ServerConfig) -> tuple[Session, list[dict[str, Any]]]:
    """A detached session rebuilt from :func:`snapshot` (subscriptions not yet watched:
    the hub adds them), and what was observed with it. Raises
    msgspec.ValidationError/DecodeError on bad data."""
    state = _decoder.decode(data)
    session = Session(state.user, config)
    session.id = state.id
    session.seq = state.seq
    session.last_rid = state.last_rid
    session.generation = state.generation
    if state.unacked:
        # Not queued: the resume's ``replay`` queues the ones the client lacks, first.
        session.unacked = deque((seq, frame.encode()) for seq, frame in state.unacked)
    for frame in state.others:
        b = frame.encode()
        session.outbox.append(b)
        session.outbox_bytes += len(b)
    if state.answered:
        session.answered = OrderedDict((rid, (gen, r.encode())) for rid, gen, r in state.answered)
    session.subscriptions = set(state.subscriptions)
    return session, state.observed
