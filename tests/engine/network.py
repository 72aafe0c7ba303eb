"""An in-memory stand-in for the relay, to pump peer messages between CallEngines.

Like h11's ConnectionPair: no sockets, no clock. Timers are recorded, and a test fires
them by name. Delivery is FIFO per (sender, receiver) pair, as the real server's is.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from rtmcall.engine import CallEngine, EngineConfig, PeerMessageError, PeerOnlineState
from rtmcall.engine.events import (
    CallEvent,
    CancelTimer,
    InvitationEvent,
    Output,
    SendPeer,
    StartTimer,
    TimerKey,
    UnwatchPeer,
    WatchPeer,
)


@dataclass
class Node:
    engine: CallEngine
    online: bool = True
    events: list[InvitationEvent] = field(default_factory=list)
    #: Call events (SPEC §6), apart so the invitation tests see only theirs.
    call_events: list[CallEvent] = field(default_factory=list)
    timers: dict[TimerKey, float] = field(default_factory=dict)
    watching: set[str] = field(default_factory=set)


class Network:
    """Engines by user id, plus the frames in flight."""

    def __init__(self, config: EngineConfig | None = None, *, quiet: bool = False) -> None:
        self.config = config or EngineConfig()
        #: Like the SDK's quiet sends: only failed deliveries are reported to the engine.
        self.quiet = quiet
        self.nodes: dict[str, Node] = {}
        #: (sender, receiver) -> deque of (msg, ref): frames in flight.
        self.wire: dict[tuple[str, str], deque] = {}
        self.counter = 0
        #: user -> how many of its next sends the server refuses as over its rate limit
        #: (TOO_OFTEN, as the real server answers a rate-limited Send).
        self.too_often: dict[str, int] = {}
        #: Every send refused as TOO_OFTEN: (sender, msg).
        self.refused: list[tuple[str, object]] = []
        #: Every peer message an engine sent: (sender, receiver, msg).
        self.sent: list[tuple[str, str, object]] = []

    def add(self, user: str, *, online: bool = True) -> Node:
        self.counter += 1
        n = self.counter
        engine = CallEngine(user, self.config, new_id=lambda: f"{user}-{n}-{self._next()}")
        engine.set_logged_in(online)
        node = Node(engine, online=online)
        self.nodes[user] = node
        return node

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    def apply(self, user: str, outputs: list[Output]) -> list[Output]:
        """Perform a node's outputs: queue sends, record timers, events and watches."""
        node = self.nodes[user]
        for o in outputs:
            match o:
                case InvitationEvent():
                    node.events.append(o)
                case CallEvent():
                    node.call_events.append(o)
                case SendPeer(to=to, msg=msg, ref=ref):
                    self.sent.append((user, to, msg))
                    peer = self.nodes.get(to)
                    if self.too_often.get(user, 0) > 0:
                        self.too_often[user] -= 1
                        self.refused.append((user, msg))
                        code = PeerMessageError.TOO_OFTEN
                    elif peer is None or not peer.online:
                        code = PeerMessageError.PEER_UNREACHABLE
                    else:
                        self.wire.setdefault((user, to), deque()).append(msg)
                        code = PeerMessageError.OK
                    if code != PeerMessageError.OK or not self.quiet:
                        self.apply(user, node.engine.delivery_result(ref, code))
                case StartTimer(key=key, seconds=s):
                    node.timers[key] = s
                case CancelTimer(key=key):
                    node.timers.pop(key, None)
                case WatchPeer(peer=p):
                    node.watching.add(p)
                    st = self.state_of(p)
                    self.apply(user, node.engine.peer_state(p, st))
                case UnwatchPeer(peer=p):
                    node.watching.discard(p)
        return outputs

    def state_of(self, user: str) -> PeerOnlineState:
        n = self.nodes.get(user)
        return PeerOnlineState.ONLINE if n and n.online else PeerOnlineState.OFFLINE

    def call(self, user: str, method: str, *args, **kw) -> list[Output]:
        return self.apply(user, getattr(self.nodes[user].engine, method)(*args, **kw))

    def deliver_one(self, sender: str, receiver: str) -> bool:
        q = self.wire.get((sender, receiver))
        if not q:
            return False
        msg = q.popleft()
        self.apply(receiver, self.nodes[receiver].engine.receive(sender, msg))
        return True

    def pump(self, limit: int = 1000) -> None:
        """Deliver everything in flight, in order, until quiet."""
        for _ in range(limit):
            busy = [k for k, q in self.wire.items() if q]
            if not busy:
                return
            for s, r in busy:
                self.deliver_one(s, r)
        raise AssertionError("network never went quiet")

    def fire(self, user: str, kind: str) -> list[Output]:
        """Fire the (only) armed timer of this kind on user's node."""
        node = self.nodes[user]
        keys = [k for k in node.timers if k[0] == kind]
        assert len(keys) == 1, f"{user}: timers {node.timers}"
        del node.timers[keys[0]]
        return self.apply(user, node.engine.timer_fired(keys[0]))

    def set_online(self, user: str, online: bool) -> None:
        node = self.nodes[user]
        node.online = online
        st = PeerOnlineState.ONLINE if online else PeerOnlineState.OFFLINE
        if not online:
            self.wire = {k: q for k, q in self.wire.items() if user not in k}
            self.apply(user, node.engine.session_lost())
        else:
            node.engine.set_logged_in(True)
        for other, onode in self.nodes.items():
            if other != user and user in onode.watching and onode.online:
                self.apply(other, onode.engine.peer_state(user, st))

    def replace_session(self, user: str, *, seen_offline: bool) -> None:
        """The user's server dies and its client logs in again elsewhere at once, with a
        fresh session: what was in flight to or from it is lost. ``seen_offline``: its
        watchers hear it go OFFLINE first (the dead node noticed before the new login),
        else they only hear ONLINE (the new login came first)."""
        node = self.nodes[user]
        self.wire = {k: q for k, q in self.wire.items() if user not in k}
        if seen_offline:
            self._tell_watchers(user, PeerOnlineState.OFFLINE)
        self.apply(user, node.engine.session_lost(replaced=True))
        node.engine.set_logged_in(True)
        self.apply(user, node.engine.session_renewed())
        self._tell_watchers(user, PeerOnlineState.ONLINE)

    def _tell_watchers(self, user: str, state: PeerOnlineState) -> None:
        for other, onode in self.nodes.items():
            if other != user and user in onode.watching and onode.online:
                self.apply(other, onode.engine.peer_state(user, state))

    def names(self, user: str) -> list[str]:
        return [e.name for e in self.nodes[user].events]


def ring(net: Network, caller: str = "alice", callee: str = "bob") -> tuple:
    """``caller`` calls ``callee``, and it rings there: (the invitation, its remote twin)."""
    inv = net.nodes[caller].engine.create_local_invitation(callee)
    net.call(caller, "send", inv)
    net.pump()
    return inv, net.nodes[callee].engine.remote[inv.id]
