"""Timers of logged-in connections: idle detection (one task for the whole server) and
token expiry (one task per connection that has a token).

Neither resets a cancel scope on every frame: the reader only stores ``conn.last_rx``
(one float) per frame, which keeps the hot path free of timer bookkeeping.
"""

from __future__ import annotations

import logging
import math
import sys
from typing import TYPE_CHECKING

import trio

from rtmcall.engine.codes import ConnectionChangeReason
from rtmcall.engine.frames import TokenExpiring, encode

from . import replies

if TYPE_CHECKING:
    from .connection import Connection
    from .serve import Server

log = logging.getLogger("rtmcall.server")


#: The idle sweeper walks the connections of each silence limit this many times per limit.
SWEEPS_PER_IDLE_TIMEOUT = 20


def sweep_periods(idle_timeout: float, standby_timeout: float) -> tuple[float, int]:
    """(period, every): the busy connections are walked every ``period`` s, all of them
    every ``every`` periods (the standby limit's own twentieth). Either limit may be
    infinite (never cut): no walk for it, then."""
    period = min(idle_timeout, standby_timeout) / SWEEPS_PER_IDLE_TIMEOUT
    every = standby_timeout / SWEEPS_PER_IDLE_TIMEOUT / period
    return period, max(1, int(every)) if math.isfinite(every) else sys.maxsize


async def sweep_idle(server: Server) -> None:
    """Idle detection for every logged-in connection of ``server``, in one task.

    A connection silent for half its ``silence_limit`` (``idle_timeout``, or
    ``standby_timeout`` in standby) is sent one ServerPing (once per silence); one silent
    for the whole limit is cut (outcome "idle": close 1008 "idle timeout", the session
    stays resumable). Each limit is checked a twentieth of it apart: every
    ``idle_timeout / 20`` s the busy connections (``server.busy``), every
    ``standby_timeout / 20`` s all of ``server.live`` — so a connection is pinged and
    closed at most 0.5 s (busy) or 4.5 s (standby) after exactly half its limit and its
    limit, with the defaults, and thousands of idle users cost one walk every 4.5 s, not
    every 0.5 s. One task instead of one per connection: no timer and no cancellation per
    connection and ping cycle, and no task's memory per idle connection.
    """
    config = server.config
    period, every = sweep_periods(config.idle_timeout, config.standby_timeout)
    ticks = 0
    while True:
        await trio.sleep(period)
        ticks += 1
        _sweep(server, server.live if ticks % every == 0 else server.busy, trio.current_time())


def _sweep(server: Server, conns: set[Connection], now: float) -> None:
    # A function of its own so that no connection stays referenced between sweeps. No
    # checkpoint in here, and neither push() nor cut() touches ``live`` or ``busy`` (a
    # connection leaves them when its task ends): iterating them directly is safe.
    ping = replies.PING
    for conn in conns:
        last = conn.last_rx
        silent = now - last
        limit = conn.silence_limit
        if silent < limit / 2:
            continue
        if silent >= limit:
            if conn.outcome != "idle":
                server.stats.idle_timeouts += 1
                conn.cut("idle")
        elif conn.pinged_for != last:
            conn.pinged_for = last
            session = conn.session
            if session is not None:
                session.push(ping)


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
        assert changed is not None  # set together with token_expires_at
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
