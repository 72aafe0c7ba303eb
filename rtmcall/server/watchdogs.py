"""Timers of a logged-in connection: idle detection and token expiry.

Both sleep until a deadline on trio's clock and re-check, instead of resetting a cancel
scope on every frame: the reader only stores ``conn.last_rx`` (one float) per frame, which
keeps the hot path free of timer bookkeeping.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from rtmcall.engine.codes import ConnectionChangeReason
from rtmcall.engine.frames import TokenExpiring, encode

from . import replies

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger("rtmcall.server")


async def watch_idle(conn: Connection) -> None:
    idle = conn.server.config.idle_timeout
    session = conn.session
    assert session is not None
    while True:
        last = conn.last_rx
        await trio.sleep_until(last + idle / 2)
        if conn.last_rx != last:
            continue
        session.push(replies.PING)
        await trio.sleep_until(last + idle)
        if conn.last_rx == last:
            conn.server.stats.idle_timeouts += 1
            conn.cut("idle")
            return


async def watch_token(conn: Connection) -> None:
    """Warn ``token_warning`` s before the token expires; kick ``token_grace`` s after."""
    config = conn.server.config
    session = conn.session
    assert session is not None
    warned_for: float | None = None
    while True:
        expires_at = session.token_expires_at
        if expires_at is None:
            return
        changed = session.token_changed
        now = trio.current_time()
        if now >= expires_at + config.token_grace:
            conn.server.stats.token_expiries += 1
            log.info("%s: token expired, closing", conn.who())
            session.kick(ConnectionChangeReason.LOGIN_FAILURE, "token expired")
            return
        warn_at = expires_at - config.token_warning
        if warned_for != expires_at and now >= warn_at:
            session.push(encode(TokenExpiring(seconds=max(0.0, expires_at - now))))
            warned_for = expires_at
        wake_at = expires_at + config.token_grace if warned_for == expires_at else warn_at
        with trio.move_on_at(wake_at):
            await changed.wait()
