"""Presence and token requests of a logged-in connection: Query, Subscribe, Unsubscribe,
Renew. Each is answered with a frame carrying the request's ``rid`` (Presence, Renewed, or
Error), and never closes the connection: a failing hub is an ``Error(unavailable)``.

They share the sender's message rate bucket with Send (Unsubscribe excepted: it only
frees memory), so presence requests cannot be used to flood the server either.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import trio

from rtmcall.engine.frames import (
    Error,
    Presence,
    Query,
    Renew,
    Renewed,
    Subscribe,
    Unsubscribe,
    user_id_problem,
)

from .hub import HubUnavailable
from .tokens import TokenError, verify_token

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger("rtmcall.server")


def _bad_users(conn: Connection, frame: Query | Subscribe) -> bool:
    """Answer Error(invalid_user) when a requested user id is not valid."""
    for user in frame.users:
        problem = user_id_problem(user)
        if problem is not None:
            conn.reply(Error(code="invalid_user", message=problem, rid=frame.rid))
            return True
    return False


def _limited(conn: Connection, rid: int) -> bool:
    assert conn.session is not None
    if conn.server.message_limits.allow(conn.session.user):
        return False
    conn.server.stats.rate_limited += 1
    conn.reply(Error(code="too_often", message="too many requests", rid=rid))
    return True


async def _answer_states(conn: Connection, rid: int, states: Awaitable[dict[str, int]]) -> None:
    """Answer with the hub's presence states, or Error(unavailable) when it failed."""
    try:
        answer = await states
    except HubUnavailable as exc:
        conn.reply(Error(code="unavailable", message=str(exc), rid=rid))
        return
    conn.reply(Presence(states=answer, rid=rid))


async def on_query(conn: Connection, frame: Query) -> bool:
    if _limited(conn, frame.rid) or _bad_users(conn, frame):
        return False
    await _answer_states(conn, frame.rid, conn.server.hub.presence(frame.users))
    return False


async def on_subscribe(conn: Connection, frame: Subscribe) -> bool:
    session = conn.session
    assert session is not None
    if _limited(conn, frame.rid) or _bad_users(conn, frame):
        return False
    limit = conn.server.config.max_subscriptions
    if len(session.subscriptions.union(frame.users)) > limit:
        message = f"a session may watch at most {limit} users"
        conn.reply(Error(code="forbidden", message=message, rid=frame.rid))
        return False
    await _answer_states(conn, frame.rid, conn.server.hub.subscribe(session, frame.users))
    return False


async def on_unsubscribe(conn: Connection, frame: Unsubscribe) -> bool:
    """Answered, like every presence request, by a Presence (the users' states)."""
    session = conn.session
    assert session is not None
    await conn.server.hub.unsubscribe(session, frame.users)
    valid = [u for u in frame.users if user_id_problem(u) is None]
    try:
        states = await conn.server.hub.presence(valid)
    except HubUnavailable:
        states = {}
    conn.reply(Presence(states=states, rid=frame.rid))
    return False


async def on_renew(conn: Connection, frame: Renew) -> bool:
    server = conn.server
    session = conn.session
    assert session is not None
    if _limited(conn, frame.rid):
        return False
    if server.secret is None:
        message = "this server does not use tokens"
        conn.reply(Error(code="unavailable", message=message, rid=frame.rid))
        return False
    try:
        left = verify_token(
            server.secret, frame.token, session.user, max_ttl=server.config.max_token_ttl
        )
    except TokenError as exc:
        conn.reply(Error(code="forbidden", message=exc.message, rid=frame.rid))
        return False
    session.set_token_deadline(trio.current_time() + left)
    conn.reply(Renewed(rid=frame.rid, token_expires_in=left))
    log.info("%s: token renewed, expires in %.0f s", conn.who(), left)
    return False
