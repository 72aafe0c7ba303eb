"""The login phase of a connection: the first frame must be a valid Login, in time.

Order of checks: frame shape (msgspec), user id (SPEC §2), the token (HMAC), then the
per-user-id login rate (Agora: 2 per second), last so that failed attempts by someone
without a valid token do not count against the user. A failure is answered with
LoginFail(reason, message) and the connection is closed; other frames before the login
get ``Error(not_logged_in)`` and the connection keeps waiting until ``login_timeout``.

A Login carrying ``resume=<session id>`` of a live session of the same user re-attaches
that session (its queued frames follow the LoginOk); an unknown or ended session id is
simply a fresh login (``resumed=False``), so the client learns its old session is gone.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio
from trio_websocket import ConnectionClosed

from rtmcall.engine.codes import LoginError
from rtmcall.engine.frames import (
    Error,
    FrameError,
    Login,
    LoginFail,
    LoginOk,
    decode_client_frame,
    encode,
    user_id_problem,
)

from . import replies
from .hub import HubUnavailable
from .session import Session
from .tokens import TokenError, verify_token

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger("rtmcall.server")


async def login_phase(conn: Connection) -> Session | None:
    """Wait for the Login and answer it; the logged-in session, or None (closed)."""
    server = conn.server
    config = server.config
    stats = server.stats
    ws = conn.ws
    with trio.move_on_after(config.login_timeout):
        while True:
            try:
                data = await ws.get_message()
            except ConnectionClosed as exc:
                if exc.reason is not None and exc.reason.code == 1009:
                    conn.outcome = "too_big"
                return None
            stats.frames_in += 1
            conn.last_rx = trio.current_time()
            try:
                frame = decode_client_frame(data)
            except FrameError as exc:
                stats.bad_frames += 1
                await conn.send_now(replies.bad_frame_reply(data, exc))
                continue
            if type(frame) is not Login:
                rid = getattr(frame, "rid", None)
                message = "log in first: the first frame must be a login"
                await conn.send_now(Error(code="not_logged_in", message=message, rid=rid))
                continue
            return await _log_in(conn, frame)
    stats.login_timeouts += 1
    conn.outcome = "login_timeout"
    log.info("connection %s: no login within %g s, closing", conn.peer, config.login_timeout)
    with trio.move_on_after(config.shutdown_grace):
        message = f"no login within {config.login_timeout:g} s"
        await conn.send_now(LoginFail(reason=LoginError.TIMEOUT, message=message))
    return None


async def _fail(conn: Connection, user: str, reason: LoginError, message: str) -> None:
    conn.server.stats.logins_failed += 1
    conn.outcome = "login_failed"
    log.info("login refused for %r from %s: %s (%s)", user, conn.peer, reason.name, message)
    with trio.move_on_after(conn.server.config.shutdown_grace):
        await conn.send_now(LoginFail(reason=int(reason), message=message))


async def _log_in(conn: Connection, login: Login) -> Session | None:
    server = conn.server
    config = server.config
    user = login.user
    problem = user_id_problem(user)
    if problem is not None:
        await _fail(conn, user, LoginError.INVALID_ARGUMENT, problem)
        return None
    expires_in: float | None = None
    if server.secret is not None:
        try:
            expires_in = verify_token(
                server.secret, login.token, user, max_ttl=config.max_token_ttl
            )
        except TokenError as exc:
            await _fail(conn, user, exc.reason, exc.message)
            return None
    # Counted only after the token check, so that strangers without a valid token cannot
    # use up a user's login budget and lock them out.
    if not server.login_limits.allow(user):
        server.stats.rate_limited += 1
        message = f"more than {config.rate_logins} logins in {config.rate_logins_per:g} s"
        await _fail(conn, user, LoginError.TOO_OFTEN, message)
        return None
    deadline = None if expires_in is None else trio.current_time() + expires_in

    session = server.sessions.get(login.resume) if login.resume else None
    if session is not None and session.ended:
        session = None  # (handed over to another node, and going: ask where it is now)
    adopted = False
    if session is None and login.resume:
        # Resume on any node: a shared hub may hand the session over from its node.
        session = await server.hub.adopt(user, login.resume, config)
        if session is not None:
            adopted = True
            server.add_session(session)
            if server.ops is not None:
                server.ops.user_online(session, resumed=True)
    if session is not None and session.user == user and not session.ended:
        previous = session.link
        if previous is not None:
            previous.cut("superseded")
        session.attach(conn)
        conn.session = session
        if login.ack is not None or adopted:
            # (An adopted session queued none of its unacknowledged frames yet.)
            session.replay(login.ack or 0)
        session.set_token_deadline(deadline)
        ok = LoginOk(
            user=user,
            session=session.id,
            resumed=True,
            heartbeat=config.heartbeat,
            standby_heartbeat=config.standby_heartbeat,
            resume_window=config.resume_window,
            token_expires_in=expires_in,
        )
        session.push_first(encode(ok))
        await server.hub.update(session)
        server.stats.resumes += 1
        log.info(
            "user %r resumed session %s from %s (%d frames queued)",
            user,
            session.id[:8],
            conn.peer,
            len(session.outbox) - 1,
        )
        return session

    session = Session(user, config)
    server.add_session(session)
    session.set_token_deadline(deadline)
    session.attach(conn)
    conn.session = session
    ok = LoginOk(
        user=user,
        session=session.id,
        heartbeat=config.heartbeat,
        standby_heartbeat=config.standby_heartbeat,
        resume_window=config.resume_window,
        token_expires_in=expires_in,
    )
    session.push(encode(ok))
    try:
        previous = await server.hub.register(session)
    except HubUnavailable as exc:
        conn.session = None
        await server.end_session(session, "hub unavailable at login")
        # TIMEOUT: the SDK retries it, as it should once the store is back.
        await _fail(conn, user, LoginError.TIMEOUT, f"service unavailable, try again ({exc})")
        return None
    server.stats.logins += 1
    if server.ops is not None:
        server.ops.user_online(session)
    log.info("user %r logged in from %s, session %s", user, conn.peer, session.id[:8])
    if previous is not None:
        server.stats.kicks += 1
        log.info("user %r: older session %s kicked (REMOTE_LOGIN)", user, previous.id[:8])
    return session
