"""The engine driver: performs the engine's effects and feeds it the world's answers.

* ``SendPeer`` → a quiet ``Send`` frame with a fresh ``rid``; the server's ``Result`` for
  that rid — it answers only failed deliveries — goes back as
  ``engine.delivery_result(ref, code)``. An ``Accept`` is not quiet: the engine's confirm
  window counts only once an accept has reached the server, so it wants to hear at once
  that it did. Frames are queued in the order the engine produced them and the transport
  never reorders its queue, so per-peer FIFO holds. After a reconnect the transport sends
  a frame again only if ``engine.still_wanted(ref)`` (an accept whose invitation ended
  meanwhile must not reach the caller late).
* ``StartTimer``/``CancelTimer`` → :class:`Timers`, deadlines on ``trio.current_time()``
  (a MockClock in tests) fired by one task as ``engine.timer_fired(key)``.
* ``WatchPeer``/``UnwatchPeer`` → presence subscriptions, shared with the application's own
  (:meth:`subscribe`): a peer is subscribed on the server while either wants it. Presence
  answers and pushes go to ``engine.peer_state`` (engine-watched peers) and as
  ``PeersOnlineStatusChanged`` events (application-watched peers).
  A Subscribe the server refuses as over the rate limit (``Error(too_often)``: Subscribe
  shares the user's peer-message bucket) is asked again after a backoff (0.5 s, doubling
  up to 2 s) for the peers still watched, so that the engine does learn their presence.
* Events → published as they come, in order.

Everything here is synchronous except :meth:`Timers.run`: the engine is called and its
outputs applied without a checkpoint in between, so nothing interleaves.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable

import trio

from rtmcall.engine import frames as f
from rtmcall.engine.codes import PeerMessageError, PeerOnlineState
from rtmcall.engine.engine import CallEngine, LocalInvitation, RemoteInvitation
from rtmcall.engine.events import (
    CallEnded,
    CallEvent,
    CallStarted,
    CancelTimer,
    InvitationEvent,
    Output,
    SendPeer,
    StartTimer,
    TimerKey,
    UnwatchPeer,
    WatchPeer,
)

from .events import ClientEvent, PeersOnlineStatusChanged
from .transport import AnswerFrame, Transport

#: Server error words (frames.Error.code) as delivery results of a peer message.
ERROR_TO_PEER_MESSAGE_ERROR: dict[str, PeerMessageError] = {
    "not_logged_in": PeerMessageError.NOT_LOGGEDIN,
    "too_often": PeerMessageError.TOO_OFTEN,
    "invalid_user": PeerMessageError.INVALID_USERID,
    "invalid_message": PeerMessageError.INVALID_MESSAGE,
    "too_large": PeerMessageError.INVALID_MESSAGE,
}


def delivery_code(frame: AnswerFrame) -> PeerMessageError:
    """The PeerMessageError a Send's answer means."""
    if isinstance(frame, f.Result):
        try:
            return PeerMessageError(frame.code)
        except ValueError:
            return PeerMessageError.FAILURE
    if isinstance(frame, f.Error):
        return ERROR_TO_PEER_MESSAGE_ERROR.get(frame.code, PeerMessageError.FAILURE)
    return PeerMessageError.FAILURE


#: The driver's own timer (engine timer keys are ``<side>:<id>``), and its backoff.
_RESUBSCRIBE: TimerKey = ("resubscribe", "driver")
RESUBSCRIBE_FIRST = 0.5
RESUBSCRIBE_MAX = 2.0


class Timers:
    """Named one-shot timers on trio's clock, fired by :meth:`run` through ``fire(key)``.

    Re-arming a key replaces its deadline. Timers due at the same moment fire in the order
    they were armed. ``fire`` may arm and disarm timers itself.
    """

    def __init__(self, fire: Callable[[TimerKey], None]) -> None:
        self._fire = fire
        self._deadlines: dict[TimerKey, float] = {}
        self._armed: dict[TimerKey, int] = {}
        self._seq = 0
        self._changed = trio.Event()

    def start(self, key: TimerKey, seconds: float) -> None:
        self._deadlines[key] = trio.current_time() + seconds
        self._seq += 1
        self._armed[key] = self._seq
        self._changed.set()

    def cancel(self, key: TimerKey) -> None:
        self._armed.pop(key, None)
        if self._deadlines.pop(key, None) is not None:
            self._changed.set()

    def deadline(self, key: TimerKey) -> float | None:
        return self._deadlines.get(key)

    def __len__(self) -> int:
        return len(self._deadlines)

    async def run(self) -> None:
        """Fire timers as they come due, earliest first. Runs until cancelled."""
        while True:
            now = trio.current_time()
            due = sorted((d, self._armed[k], k) for k, d in self._deadlines.items() if d <= now)
            for deadline, _, key in due:
                # An earlier firing may have disarmed or re-armed this one.
                if self._deadlines.get(key) == deadline:
                    del self._deadlines[key]
                    del self._armed[key]
                    self._fire(key)
            earliest = min(self._deadlines.values(), default=math.inf)
            if earliest <= trio.current_time():
                await trio.lowlevel.checkpoint()
                continue
            self._changed = trio.Event()
            with trio.move_on_at(earliest):
                await self._changed.wait()


class Driver:
    """Applies engine outputs; see the module docstring.

    Args:
      engine: the session's CallEngine.
      transport: where frames go.
      publish: hands an event to the application's subscribers.
    """

    def __init__(
        self,
        engine: CallEngine,
        transport: Transport,
        publish: Callable[[ClientEvent], None],
    ) -> None:
        self.engine = engine
        self.transport = transport
        self.publish = publish
        self.timers = Timers(self._timer_fired)
        #: Peers the engine asked to watch / the application subscribed to.
        self.engine_watch: set[str] = set()
        self.user_watch: set[str] = set()
        #: Last known online state of every subscribed peer.
        self.presence: dict[str, PeerOnlineState] = {}
        #: When each call that is on started (trio time): CallEnded's duration.
        self.call_started: dict[str, float] = {}
        #: Peers whose Subscribe was refused as too often, to ask again (and the backoff).
        self._resubscribe: set[str] = set()
        self._resubscribe_delay = RESUBSCRIBE_FIRST

    # --- engine outputs ------------------------------------------------------------------

    def apply(self, outputs: list[Output]) -> None:
        for out in outputs:
            match out:
                case InvitationEvent():
                    self.publish(out)
                case CallStarted(call=call):
                    self.call_started[call.id] = trio.current_time()
                    self.publish(out)
                case CallEnded(call=call):
                    now = trio.current_time()
                    started = self.call_started.pop(call.id, now)
                    self.publish(dataclasses.replace(out, duration=max(0.0, now - started)))
                case CallEvent():
                    self.publish(out)
                case SendPeer(to=to, msg=msg, ref=ref):
                    rid = self.transport.next_rid()
                    # Quiet: the server answers only a failed delivery (all the engine
                    # acts on); delivered ones are acknowledged in bulk by its pongs. Not
                    # an Accept: that it reached the server starts the confirm window.
                    quiet = not isinstance(msg, f.Accept)
                    self.transport.send(
                        f.Send(rid=rid, to=to, msg=msg, quiet=quiet),
                        lambda answer, ref=ref: self._delivered(ref, answer),
                        wanted=lambda ref=ref: self.engine.still_wanted(ref),
                    )
                case StartTimer(key=key, seconds=seconds):
                    self.timers.start(key, seconds)
                case CancelTimer(key=key):
                    self.timers.cancel(key)
                case WatchPeer(peer=peer):
                    new = peer not in self.engine_watch and peer not in self.user_watch
                    self.engine_watch.add(peer)
                    if new:
                        self.subscribe([peer])
                case UnwatchPeer(peer=peer):
                    self.engine_watch.discard(peer)
                    if peer not in self.user_watch:
                        self.unsubscribe([peer])

    def _delivered(self, ref: int, answer: AnswerFrame) -> None:
        self.apply(self.engine.delivery_result(ref, delivery_code(answer)))

    def _timer_fired(self, key: TimerKey) -> None:
        if key == _RESUBSCRIBE:
            watched = self.engine_watch | self.user_watch
            peers = self._resubscribe & watched
            self._resubscribe.clear()
            if peers:
                self.subscribe(peers)
            return
        self.apply(self.engine.timer_fired(key))

    def timer_deadline(self, inv: LocalInvitation | RemoteInvitation) -> float | None:
        """When the invitation's current window ends (trio time), or None.

        For a ringing outgoing invitation that is when the callee's lifetime ends, as the
        callee shows it: the caller's own timer runs ``expire_grace`` longer, as a backstop.
        """
        side = "L" if isinstance(inv, LocalInvitation) else "R"
        grace = self.engine.config.expire_grace
        deadlines = []
        for kind in inv.timers:
            deadline = self.timers.deadline((kind, f"{side}:{inv.id}"))
            if deadline is not None:
                deadlines.append(
                    deadline - grace if side == "L" and kind == "lifetime" else deadline
                )
        return min(deadlines, default=None)

    # --- presence ------------------------------------------------------------------------

    def subscribe(self, peers: Iterable[str]) -> None:
        """Ask the server for these peers' presence, now and on every change."""
        peers = sorted(set(peers))
        for i in range(0, len(peers), f.MAX_PEERS_PER_QUERY):
            chunk = peers[i : i + f.MAX_PEERS_PER_QUERY]
            rid = self.transport.next_rid()
            self.transport.send(
                f.Subscribe(rid=rid, users=chunk),
                lambda answer, chunk=chunk: self._subscribed(answer, chunk),
            )

    def unsubscribe(self, peers: Iterable[str]) -> None:
        peers = sorted(set(peers))
        for peer in peers:
            self.presence.pop(peer, None)
        for i in range(0, len(peers), f.MAX_PEERS_PER_QUERY):
            rid = self.transport.next_rid()
            self.transport.send(f.Unsubscribe(rid=rid, users=peers[i : i + f.MAX_PEERS_PER_QUERY]))

    def resubscribe(self) -> None:
        """After a (re)login: subscribe again to every watched peer; the answers bring any
        change that happened while we were away."""
        watched = self.engine_watch | self.user_watch
        if watched:
            self.subscribe(watched)

    def _subscribed(self, answer: AnswerFrame, users: list[str]) -> None:
        if isinstance(answer, f.Presence):
            if not self._resubscribe and self.timers.deadline(_RESUBSCRIBE) is None:
                self._resubscribe_delay = RESUBSCRIBE_FIRST
            self.presence_update(answer.states)
        elif isinstance(answer, f.Error) and answer.code == "too_often":
            self._resubscribe.update(users)
            if self.timers.deadline(_RESUBSCRIBE) is None:
                self.timers.start(_RESUBSCRIBE, self._resubscribe_delay)
                self._resubscribe_delay = min(self._resubscribe_delay * 2, RESUBSCRIBE_MAX)

    def presence_update(
        self, states: dict[str, int], *, announce: Iterable[str] = ()
    ) -> dict[str, PeerOnlineState]:
        """New presence information (an answer or a push). Tells the engine about its
        peers and publishes changes of the application's peers (and of ``announce``, even
        unchanged). Returns the states, decoded."""
        announce = set(announce)
        decoded: dict[str, PeerOnlineState] = {}
        for peer, code in states.items():
            try:
                decoded[peer] = PeerOnlineState(code)
            except ValueError:
                decoded[peer] = PeerOnlineState.UNREACHABLE
        changed: dict[str, PeerOnlineState] = {}
        for peer, state in decoded.items():
            watched = peer in self.engine_watch or peer in self.user_watch
            old = self.presence.get(peer)
            if watched:
                self.presence[peer] = state
            if peer in self.user_watch and (old is not state or peer in announce):
                changed[peer] = state
        if changed:
            self.publish(PeersOnlineStatusChanged(changed))
        for peer, state in decoded.items():
            if peer in self.engine_watch:
                self.apply(self.engine.peer_state(peer, state))
        return decoded
