"""The softphone: one logged-in client, the invitations it has seen, and the commands of the
command language (:mod:`.commands`) carried out against it.

Shared by the interactive console, pipe mode and the one-shot ``call``/``answer``: they
differ only in their :class:`~.sinks.Sink` and in where command lines come from.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, TypeAlias

import trio

from rtmcall.client.errors import RtmError
from rtmcall.client.events import ConnectionStateChanged
from rtmcall.engine.codes import (
    LOCAL_TERMINAL,
    REMOTE_TERMINAL,
    ConnectionState,
    LocalInvitationState,
    PeerOnlineState,
    RemoteInvitationState,
)
from rtmcall.engine.events import (
    ApiCallError,
    CallEnded,
    InvitationEvent,
    InvitationInfo,
    LocalInvitationInfo,
    RemoteInvitationInfo,
)

from . import commands as c
from .commands import help_lines
from .formats import text as textfmt
from .formats.calls import MissedCalls
from .formats.rows import Row, short_id
from .history.store import HistoryError, HistoryRecorder, warn_to_stderr
from .sinks import JsonSink, Sink, TextSink

if TYPE_CHECKING:
    from rtmcall.client import RtmClient
    from rtmcall.engine.call import Call
    from rtmcall.engine.engine import LocalInvitation, RemoteInvitation

#: An engine invitation (live: its fields change as it moves), or an event's snapshot when
#: the client no longer holds the object.
Tracked: TypeAlias = "LocalInvitation | RemoteInvitation | InvitationInfo"


def _info(obj: Tracked) -> InvitationInfo:
    return obj if isinstance(obj, LocalInvitationInfo | RemoteInvitationInfo) else obj.info()


def _terminal(info: InvitationInfo) -> bool:
    # By direction: the two state enums share numbers, and IntEnums compare as numbers.
    return info.state in (LOCAL_TERMINAL if info.direction == "out" else REMOTE_TERMINAL)


#: Why a session was aborted, in words (ConnectionChangeReason names).
_ABORT_WORDS = {
    "REMOTE_LOGIN": "the same user logged in somewhere else",
    "BANNED_BY_SERVER": "the server ended the session",
    "INTERRUPTED": "the connection to the server was lost and could not be resumed",
    "LOGIN_FAILURE": "the server refused to resume the session",
    "LOGIN_TIMEOUT": "the server did not answer in time",
}

#: Commands that need the server: typed while the client reconnects, they wait for the
#: connection (bounded, and say so) rather than go out unseen after it or fail at once.
_NEEDS_CONNECTION = (c.Call, c.Cancel, c.Accept, c.Refuse, c.Online)

#: States a ``cancel`` / ``accept`` / ``refuse`` without an ID looks for.
_CAN_CANCEL = (LocalInvitationState.SENT_TO_REMOTE, LocalInvitationState.RECEIVED_BY_REMOTE)
_CAN_ANSWER = (RemoteInvitationState.INVITATION_RECEIVED,)


class Softphone:
    """Carries out commands for one session and keeps the invitation list.

    Args:
      client: a logged-in :class:`rtmcall.client.RtmClient`.
      sink: where every result and event is reported.
      history: record every invitation and call in the call history (SPEC §6).
      login_session: a ``login`` session: say how many calls were missed since the last.
    """

    def __init__(
        self,
        client: RtmClient,
        sink: Sink,
        *,
        history: bool = True,
        login_session: bool = False,
    ) -> None:
        self.client = client
        self.sink = sink
        #: The call history's writer (None: not kept).
        self.history: HistoryRecorder | None = (
            HistoryRecorder(
                client.user,
                self._warn,
                login_session=login_session,
                on_missed=self._missed,
            )
            if history
            else None
        )
        #: Calls that ended: id -> their CallEnded (the table shows how and how long).
        self._calls_ended: dict[str, CallEnded] = {}
        #: id -> invitation, in the order first seen (the table's order).
        self._invs: dict[str, Tracked] = {}
        self._changed = trio.Event()
        #: Bumped on every change, so views can tell whether to redraw.
        self.version = 0
        #: Set when the session ended under us (kicked, aborted): why, in words.
        self.ended: str | None = None
        # Events about an invitation that `call` is still sending wait here until its
        # LocalInvitationSent line is out, so scripts always see that line first.
        self._announcing: set[str] = set()
        self._held: list[InvitationEvent] = []
        #: Outgoing invitations whose callee was offline when sent (the table says
        #: "waiting for PEER" until it rings).
        self._offline_at_send: set[str] = set()
        # Subscribe now, before any checkpoint: the client promises every event to a
        # subscription made right after login (an invitation may be waiting for us).
        self._stream = client.events()
        #: Called once when the session ends under us, so the runner can stop reading input.
        self.on_end: Callable[[], None] = lambda: None

    # --- the invitation list ----------------------------------------------------------

    def _notify(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = trio.Event()
        self.sink.changed()

    async def wait_change(self) -> None:
        await self._changed.wait()

    def infos(self) -> list[InvitationInfo]:
        return [_info(obj) for obj in self._invs.values()]

    @property
    def calls(self) -> Mapping[str, Call]:
        """The calls (SPEC §6) by invitation id, on or ended (read only)."""
        return self.client.calls

    def rows(self) -> list[Row]:
        """A snapshot for the table. Countdown deadlines (and call start times) are moved
        from trio's clock to :func:`time.monotonic`, so another thread can render them."""
        mono, trio_now = time.monotonic(), trio.current_time()
        rows = []
        for obj in self._invs.values():
            info = _info(obj)
            live = not _terminal(info)
            deadline = None
            if live and not isinstance(obj, LocalInvitationInfo | RemoteInvitationInfo):
                at = self.client.timer_deadline(obj)
                if at is not None and math.isfinite(at):
                    deadline = mono + (at - trio_now)
            since = None
            call = self.client.calls.get(info.id)
            if call is not None and call.active:
                started = self.client.call_started_at(call)
                since = mono + ((started if started is not None else trio_now) - trio_now)
            ended = self._calls_ended.get(info.id)
            row = Row.from_info(
                info,
                deadline=deadline,
                live=live,
                call_since=since,
                call_reason=ended.reason if ended is not None and since is None else None,
                call_duration=ended.duration if ended is not None else 0.0,
            )
            if live and info.id in self._offline_at_send and self._still_waiting(obj):
                row = replace(row, waiting_for_peer=True)
            rows.append(row)
        return rows

    @staticmethod
    def _still_waiting(obj: Tracked) -> bool:
        # Sent, not acknowledged, and the callee not seen online since (the engine tracks
        # it from presence and delivery results).
        return _info(obj).state == LocalInvitationState.SENT_TO_REMOTE and not getattr(
            obj, "seen_online", False
        )

    async def _peers_online(self, peers: Iterable[str]) -> dict[str, bool]:
        """Whether each peer is logged in now; a peer is missing when the server could not
        tell us quickly (or its id is not valid: the call itself will say why)."""
        from rtmcall.engine.frames import user_id_problem

        valid = sorted({p for p in peers if user_id_problem(p) is None})
        if not valid:
            return {}
        # Shielded and bounded: a Ctrl-C now must not make `call` skip its `sent` lines.
        with trio.CancelScope(shield=True), trio.move_on_after(2.0):
            try:
                states = await self.client.query_peers_online_status(valid)
            except RtmError:
                return {}
            # UNREACHABLE is still logged in (its connection is resuming): as the engine.
            return {peer: state != PeerOnlineState.OFFLINE for peer, state in states.items()}
        return {}

    def _lookup(self, info: InvitationInfo) -> Tracked:
        table = (
            self.client.local_invitations
            if info.direction == "out"
            else self.client.remote_invitations
        )
        return table.get(info.id, info)

    def handle_event(self, ev: object) -> None:
        """Record one client event and report it."""
        if self.history is not None:
            self.history.event(ev)
        if isinstance(ev, InvitationEvent):
            info = ev.invitation
            if info.id in self._announcing:
                self._held.append(ev)
                return
            self._invs[info.id] = self._lookup(info)
        if isinstance(ev, CallEnded):
            self._calls_ended[ev.call.id] = ev
        self.sink.event(ev)
        if isinstance(ev, ConnectionStateChanged) and ev.state == ConnectionState.ABORTED:
            why = _ABORT_WORDS.get(ev.reason.name, "the session ended")
            self.ended = f"logged out: {why} ({ev.reason.name})"
            self.on_end()
        self._notify()

    async def pump(self) -> None:
        """Run forever: take the client's events and report them (and keep the call
        history written, off the event loop)."""
        async with trio.open_nursery() as nursery:
            if self.history is not None:
                nursery.start_soon(self.history.run)
            async with self._stream:
                async for ev in self._stream:
                    self.handle_event(ev)

    def _drain(self) -> None:
        """Handle the events already published (e.g. by the logout) without waiting."""
        while True:
            try:
                ev = self._stream.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return
            self.handle_event(ev)

    def _warn(self, line: str) -> None:
        """One warning line (the history cannot be used): never on stdout in JSON mode, and
        not a failed command line (pipe mode's exit status stays the commands')."""
        sink = getattr(self.sink, "primary", self.sink)  # under a control socket's tee
        if isinstance(sink, JsonSink):
            warn_to_stderr(line)
        elif isinstance(sink, TextSink):
            sink.write_error(line)
        else:
            sink.error(line)

    def _missed(self, peers: list[str]) -> None:
        self.sink.event(MissedCalls(len(peers), tuple(dict.fromkeys(peers))))

    # --- commands -----------------------------------------------------------------------

    async def execute(self, cmd: c.Command) -> bool:
        """Carry out one command; False when it asks to quit. Never raises for a refused
        or failed command: that is reported to the sink."""
        if isinstance(cmd, _NEEDS_CONNECTION) and not await self._await_connection(cmd):
            return True
        try:
            match cmd:
                case c.Call():
                    # Presence is known at once: say it with each `sent` rather than leave
                    # 30 s of silence before "peer offline". One query for every peer.
                    online = await self._peers_online(cmd.peers)
                    for peer in cmd.peers:
                        await self._call(peer, cmd, online.get(peer))
                case c.Cancel(id=inv_id):
                    await self._answer("cancel", inv_id)
                case c.Accept(id=inv_id, response=response):
                    await self._answer("accept", inv_id, response)
                case c.Refuse(id=inv_id, response=response, reason=reason):
                    await self._answer("refuse", inv_id, response, reason)
                case c.Hangup(id=inv_id):
                    await self._hangup(inv_id)
                case c.Dnd(on=on):
                    if on is not None:
                        self.client.set_dnd(on)
                        self._notify()
                    state = "on: every call is refused as busy" if self.client.dnd else "off"
                    self.sink.lines([f"do not disturb is {state}"])
                case c.WhenBusy(policy=policy):
                    if policy is not None:
                        self.client.set_when_busy(policy)
                        self._notify()
                    words = {"ring": "ring beside it", "refuse": "be refused as busy"}
                    what = words[self.client.when_busy]
                    self.sink.lines([f"a call that comes while you are busy will {what}"])
                case c.History():
                    await self._history(cmd)
                case c.List():
                    self.sink.listing(self.infos(), self.rows())
                case c.Online(peers=peers):
                    self.sink.online(await self.client.query_peers_online_status(list(peers)))
                case c.Wait():
                    await self._wait(cmd)
                case c.Sleep(seconds=seconds):
                    await trio.sleep(seconds)
                case c.Help(topic=topic):
                    self.sink.lines(help_lines(topic))
                case c.Quit():
                    return False
        except RtmError as exc:  # not logged in, the server refused a query, …
            self.sink.error(f"{type(cmd).__name__.lower()}: {textfmt.rtm_error(exc)}")
        return True

    async def _await_connection(self, cmd: c.Command) -> bool:
        """While the client reconnects, say so and wait for the connection: at most the
        server's resume window and a little (past it the session, and every call in it, is
        lost anyway). False when it did not come back: the command is not carried out."""
        if self.client.connection_state is not ConnectionState.RECONNECTING:
            return True
        name = type(cmd).__name__.lower()
        ok = self.client.transport.login_ok
        bound = (ok.resume_window if ok is not None else 10.0) + 2.0
        self.sink.notice(
            f"{name}: waiting for the connection to the server (reconnecting, at most {bound:g} s)"
        )
        with trio.move_on_after(bound):
            while self.client.connection_state is ConnectionState.RECONNECTING:
                if self.ended is not None:
                    break
                await self.wait_change()
        if self.client.connection_state is ConnectionState.CONNECTED:
            self.sink.notice(f"{name}: connected again")
            return True
        if self.ended is None:  # (an ended session was reported as such)
            self.sink.error(f"{name}: not done: no connection to the server within {bound:g} s")
        return False

    async def run_line(self, line: str) -> bool:
        """Parse and carry out one command line; False when it asks to quit."""
        try:
            cmd = c.parse(line)
        except c.CommandError as exc:
            self.sink.error(str(exc))
            return True
        if cmd is None:
            return True
        return await self.execute(cmd)

    async def _call(self, peer: str, cmd: c.Call, peer_online: bool | None = None) -> None:
        try:
            inv = self.client.create_invitation(
                peer, content=cmd.content, channel_id=cmd.channel, lifetime=cmd.lifetime
            )
        except ApiCallError as exc:
            self.sink.api_error(exc, "call", None, peer)
            return
        self._invs[inv.id] = inv
        self._announcing.add(inv.id)
        try:
            await self.client.send_invitation(inv)
        except ApiCallError as exc:
            self.sink.api_error(exc, "call", inv.info(), peer)
            return
        finally:
            self._announcing.discard(inv.id)
            held = [ev for ev in self._held if ev.invitation.id == inv.id]
            self._held = [ev for ev in self._held if ev.invitation.id != inv.id]
        if inv.state == LocalInvitationState.FAILURE:
            peer_online = None  # it failed at once (not logged in): presence is beside the point
        if peer_online is False:
            self._offline_at_send.add(inv.id)
        within = self.client.config.no_response_timeout
        self.sink.sent(inv.info(), peer_online=peer_online, within=within)
        if self.history is not None:
            self.history.sent(inv.info())
        for ev in held:
            self.sink.event(ev)
        self._notify()

    def pick(self, command: str, inv_id: str | None) -> Tracked | str | None:
        """The invitation a ``cancel``/``accept``/``refuse`` is about.

        With an ID: the one invitation whose id starts with it (an unknown ID is passed on
        as it is, so the engine answers with its INVALID_ARGUMENT). Without: the newest it
        can apply to, else the newest of its direction (so the engine can say why not).
        Reports a usage error and returns None when there is nothing to act on.
        """
        direction = "out" if command == "cancel" else "in"
        if inv_id is not None:
            found = [obj for key, obj in self._invs.items() if key.startswith(inv_id)]
            if len(found) > 1:
                ids = ", ".join(short_id(_info(o).id) for o in found[:5])
                self.sink.error(f"{command}: ID {inv_id!r} is ambiguous ({ids}); type more")
                return None
            return found[0] if found else inv_id
        mine = [o for o in self._invs.values() if _info(o).direction == direction]
        applies = _CAN_CANCEL if command == "cancel" else _CAN_ANSWER
        for obj in reversed(mine):
            if _info(obj).state in applies:
                return obj
        if mine:
            return mine[-1]
        what = "outgoing invitation to cancel" if direction == "out" else f"call to {command}"
        if direction == "in" and self._invs:
            what += f" (only the callee can {command}; your calls here are outgoing)"
        elif direction == "out" and self._invs:
            what += " (only the caller can cancel; to decline an incoming call, refuse it)"
        self.sink.error(f"{command}: there is no {what}")
        return None

    async def _answer(
        self, command: str, inv_id: str | None, response: str = "", reason: str = "declined"
    ) -> None:
        target = self.pick(command, inv_id)
        if target is None:
            return
        arg = target if isinstance(target, str) else _info(target).id
        try:
            if command == "cancel":
                await self.client.cancel(arg)
            elif command == "accept":
                await self.client.accept(arg, response=response)
            else:
                await self.client.refuse(arg, response=response, reason=reason)
        except ApiCallError as exc:
            info = None if isinstance(target, str) else _info(target)
            self.sink.api_error(exc, command, info, None)
            return
        self._notify()

    async def _hangup(self, inv_id: str | None) -> None:
        """``hangup [ID]``: the call with that id (prefix), else the newest call that is
        on (else the newest call, so the engine says it ended)."""
        if inv_id is None:
            calls = [k for k in self._invs if k in self.client.calls]
            on = [k for k in calls if self.client.calls[k].active]
            if not calls:
                self.sink.error("hangup: there is no call to hang up")
                return
            target: Tracked | str = self._invs[(on or calls)[-1]]
        else:
            picked = self.pick("hangup", inv_id)
            if picked is None:
                return
            target = picked
        arg = target if isinstance(target, str) else _info(target).id
        try:
            await self.client.hangup(arg)
        except ApiCallError as exc:
            info = None if isinstance(target, str) else _info(target)
            self.sink.api_error(exc, "hangup", info, None)
            return
        self._notify()

    async def _history(self, cmd: c.History) -> None:
        if self.history is None:
            self.sink.error("history: this session keeps no call history")
            return
        try:
            rows = await self.history.query(
                user=self.client.user, missed=cmd.missed, peer=cmd.peer, limit=cmd.limit
            )
        except HistoryError as exc:
            self.sink.error(f"history: {exc}")
            return
        show = getattr(self.sink, "history_rows", None)
        if show is not None:
            show(rows)
        else:
            from .history.store import text_line

            self.sink.lines([text_line(r) for r in rows] or ["no calls in the history"])

    def _ringing_incoming(self) -> bool:
        return any(
            i.direction == "in" and i.state == RemoteInvitationState.INVITATION_RECEIVED
            for i in self.infos()
        )

    async def _wait(self, cmd: c.Wait) -> None:
        if cmd.incoming:
            done = self._ringing_incoming
        elif cmd.id is not None:
            found = [k for k in self._invs if k.startswith(cmd.id)]
            if len(found) != 1:
                problem = "is ambiguous" if found else "matches no invitation"
                self.sink.error(f"wait: ID {cmd.id!r} {problem}")
                return
            key = found[0]
            done = lambda: _terminal(_info(self._invs[key]))  # noqa: E731
        else:
            done = lambda: not any(not _terminal(i) for i in self.infos())  # noqa: E731
        timeout = math.inf if cmd.timeout is None else cmd.timeout
        with trio.move_on_after(timeout):
            while not done() and self.ended is None:
                await self.wait_change()
            return
        self.sink.error(f"wait: timed out after {timeout:g} s")

    # --- the end ------------------------------------------------------------------------

    def pending_outgoing(self) -> list[Tracked]:
        infos = ((o, _info(o)) for o in self._invs.values())
        return [o for o, i in infos if i.direction == "out" and not _terminal(i)]

    async def settle(self, invs: Iterable[Tracked], within: float) -> None:
        """Wait (at most ``within`` seconds) until every one of ``invs`` ended."""
        keys = [_info(o).id for o in invs]
        with trio.move_on_after(within):
            while any(not _terminal(_info(self._invs[k])) for k in keys if k in self._invs):
                await self.wait_change()

    async def shutdown(self, settle_timeout: float = 3.0, logout_timeout: float = 3.0) -> None:
        """Cancel our pending outgoing invitations, let them and any accept in flight settle
        (bounded), then log out. Safe to call when the session already ended."""
        if self.ended is None:
            for obj in self.pending_outgoing():
                try:
                    await self.client.cancel(_info(obj).id)
                except (ApiCallError, RtmError):
                    pass  # it ended meanwhile, or the session is gone: nothing to cancel
            # Calls that are on are hung up (the peer sees HANGUP_REMOTE, not an offline).
            for call in self.client.engine.active_calls():
                try:
                    await self.client.hangup(call.id)
                except (ApiCallError, RtmError):
                    pass
            in_flight = [
                o
                for o in self._invs.values()
                if not _terminal(_info(o))
                and (
                    _info(o).direction == "out"
                    or _info(o).state == RemoteInvitationState.ACCEPT_SENT_TO_LOCAL
                )
            ]
            await self.settle(in_flight, settle_timeout)
        with trio.move_on_after(logout_timeout):
            try:
                await self.client.logout()
            except RtmError:
                pass
        self._drain()  # what the logout ended (calls: SESSION_LOST) goes into the history
        if self.history is not None:
            await self.history.close()
