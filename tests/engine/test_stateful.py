"""Random interleavings of API calls, deliveries, duplicates, drops and timers.

Hypothesis drives one caller (alice) and two callees (bob, carol) through arbitrary
schedules and checks, after every step and once everything has settled:

* no contradiction, ever: if one side is ACCEPTED the other is ACCEPTED or FAILURE;
* agreement (SPEC §2) for every invitation none of whose frames was dropped:
  (ACCEPTED_BY_REMOTE, ACCEPTED), (REFUSED_BY_REMOTE, REFUSED), (CANCELED, CANCELED),
  (FAILURE, FAILURE);
* liveness: once the network is drained and every armed timer has fired, every invitation
  on both sides is terminal and no timer is left armed.

Calls (SPEC §6) ride along: either side hangs up any call at any moment (hang-up racing
hang-up), callees flip do-not-disturb and the busy policy (busy refusals are refusals like
any other, so agreement covers them), and a callee's session may drop for longer than its
resume window (its frames in flight are lost, the caller learns it from presence) and come
back. Any user's server may die (a node killed) with its client logging in again elsewhere
at once, a fresh session, its peers hearing it go OFFLINE first or not: frames in flight to
or from it are lost, and yet an accept or a confirm lost so must not break agreement (the
callee sends its accept again, the caller answers with its confirm or its hang-up). Checked:

* every call ends on both live sides: once someone hangs up each call that is still on and
  the network drains, no call is left live on any online node (unless every try of its
  hang-up was lost: dropped, or with a server);
* a hang-up is never lost while no frame was: for a call none of whose frames was dropped,
  the two ends' reasons match — (HANGUP_LOCAL, HANGUP_REMOTE) either way round,
  (HANGUP_LOCAL, HANGUP_LOCAL) for a race, (PEER_OFFLINE, SESSION_LOST) for a drop.

The server may refuse any user's next sends as over its rate limit (TOO_OFTEN): the engine
sends them again on its resend timer, so agreement holds all the same.

The network model is the real server's contract: per-pair FIFO while connected. Timers model
time: the callee's lifetime timer (the authority on expiry) may fire at any moment; the
*backstop* timers (the caller's no-ACK, lifetime and cancel windows and the callee's confirm
window) fire only when nothing is in flight between the two peers, i.e. when the window is
longer than the network's latency — which is what the windows are for; a rate-limited
message waiting for its resend is in flight too — and the caller's expiry backstop only
after the callee's own expiry timer is gone.
"""

from __future__ import annotations

from collections import Counter, deque

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from rtmcall.engine import LocalInvitationState, RemoteInvitationState
from rtmcall.engine.call import HANGUP_TRIES
from rtmcall.engine.codes import AGREEING_STATES, CallEndReason
from rtmcall.engine.events import ApiCallError
from rtmcall.engine.frames import Accept, Confirm, Hangup
from rtmcall.engine.invitation import CalleePhase

from .network import Network

LS = LocalInvitationState
RS = RemoteInvitationState
AGREE = AGREEING_STATES
CALLEES = ("bob", "carol")
LINKS = [("alice", c) for c in CALLEES] + [(c, "alice") for c in CALLEES]
BACKSTOPS = {"no_ack", "cancel", "confirm", "hangup"}
CR = CallEndReason
CALL_AGREE = {
    (CR.HANGUP_LOCAL, CR.HANGUP_REMOTE),
    (CR.HANGUP_REMOTE, CR.HANGUP_LOCAL),
    (CR.HANGUP_LOCAL, CR.HANGUP_LOCAL),
    (CR.PEER_OFFLINE, CR.SESSION_LOST),
}


class Invitations(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.net = Network()
        for user in ("alice", *CALLEES):
            self.net.add(user)
        self.tainted: set[str] = set()
        #: Calls whose two reasons may differ (a session replaced under them).
        self.call_tainted: set[str] = set()
        #: Accepting invitations whose handshake lost frames when a server died: id ->
        #: index in ``net.sent`` from which an accept sent again is looked for.
        self.await_reaccept: dict[str, int] = {}
        #: Those invitations' parties: a session of theirs that drops for good afterwards
        #: (beyond its resume window: longer than the confirm window) loses the handshake.
        self.death_hit: dict[str, tuple[str, str]] = {}
        self.sent = 0
        #: Hang-ups lost (dropped, or with a server), by call: a call all of whose tries
        #: were lost may be left on at its peer (as a SIP BYE lost every time).
        self.hangups_lost: Counter[str] = Counter()

    # --- the application ------------------------------------------------------------

    @precondition(lambda self: self.sent < 6)
    @rule(callee=st.sampled_from(CALLEES), lifetime=st.sampled_from([None, 5.0]))
    def send(self, callee: str, lifetime: float | None) -> None:
        inv = self.net.nodes["alice"].engine.create_local_invitation(
            callee, content="x", lifetime=lifetime
        )
        self.net.call("alice", "send", inv)
        self.sent += 1

    @precondition(lambda self: self.sent < 6)
    @rule(callee=st.sampled_from(CALLEES), settle=st.booleans())
    def call_and_accept(self, callee: str, settle: bool) -> None:
        """An invitation that rings and is accepted at once (the accept, and with
        ``settle`` the confirm, delivered): so that calls are common."""
        if not self.net.nodes[callee].online:
            return
        inv = self.net.nodes["alice"].engine.create_local_invitation(callee, content="x")
        self.net.call("alice", "send", inv)
        self.sent += 1
        while self.net.deliver_one("alice", callee) or self.net.deliver_one(callee, "alice"):
            pass
        try:
            self.net.call(callee, "accept", inv.id, "r")
        except ApiCallError:
            return
        self.net.deliver_one(callee, "alice")
        if settle:
            self.net.deliver_one("alice", callee)

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        local = list(self.net.nodes["alice"].engine.local)
        if local:
            inv_id = data.draw(st.sampled_from(local))
            try:
                self.net.call("alice", "cancel", inv_id)
            except ApiCallError:
                pass

    @rule(callee=st.sampled_from(CALLEES), accept=st.booleans(), data=st.data())
    def answer(self, callee: str, accept: bool, data: st.DataObject) -> None:
        remote = list(self.net.nodes[callee].engine.remote)
        if remote and self.net.nodes[callee].online:
            inv_id = data.draw(st.sampled_from(remote))
            try:
                self.net.call(callee, "accept" if accept else "refuse", inv_id, "r")
            except ApiCallError:
                pass

    @rule(user=st.sampled_from(("alice", *CALLEES)), data=st.data())
    def hangup(self, user: str, data: st.DataObject) -> None:
        calls = sorted(self.net.nodes[user].engine.calls)
        if calls and self.net.nodes[user].online:
            call_id = data.draw(st.sampled_from(calls))
            try:
                self.net.call(user, "hangup", call_id)
            except ApiCallError:
                pass

    @rule(callee=st.sampled_from(CALLEES), dnd=st.booleans(), refuse=st.booleans())
    def busy_settings(self, callee: str, dnd: bool, refuse: bool) -> None:
        """Do-not-disturb and the busy policy flip: new invitations are refused as busy."""
        engine = self.net.nodes[callee].engine
        engine.set_dnd(dnd)
        engine.set_when_busy("refuse" if refuse else "ring")

    @rule(callee=st.sampled_from(CALLEES))
    def session_drops(self, callee: str) -> None:
        """The callee's connection is cut for longer than its resume window: what was in
        flight to or from it is lost, its session ends, the caller sees it offline."""
        node = self.net.nodes[callee]
        if not node.online:
            return
        for link, q in self.net.wire.items():
            if callee in link:
                self.tainted.update(m.id for m in q)
        # And what waits for its resend (rate-limited), to or from it: in flight too.
        for user, other in self.net.nodes.items():
            eng = other.engine
            for inv_id in eng._resend:
                inv = self._tracked(eng, inv_id)
                if user == callee or (inv is not None and inv.peer == callee):
                    self.tainted.add(inv_id)
        self.tainted.update(i for i, parties in self.death_hit.items() if callee in parties)
        self.net.set_online(callee, False)

    @rule(user=st.sampled_from(("alice", *CALLEES)), seen_offline=st.booleans())
    def server_dies(self, user: str, seen_offline: bool) -> None:
        """The user's server is killed and its client logs in again on another at once (a
        fresh session). Lost in flight: an Accept or Confirm (the handshake must recover
        them); anything else taints its invitation (a refuse lost with a server is lost), and
        so does an invitation the fresh session ends on its own."""
        node = self.net.nodes[user]
        if not node.online:
            return
        for link, q in self.net.wire.items():
            if user in link:
                self.tainted.update(m.id for m in q if not isinstance(m, Accept | Confirm))
                self.hangups_lost.update(m.id for m in q if isinstance(m, Hangup))
        # (What the user's own engine keeps for its resend, the new session sends; what the
        # peers keep for theirs may reach a session that ended its invitation meanwhile.)
        for other_user, other in self.net.nodes.items():
            eng = other.engine
            for inv_id in eng._resend:
                inv = self._tracked(eng, inv_id)
                if inv is not None and inv.peer == user and other_user != user:
                    self.tainted.add(inv_id)
                elif other_user == user and seen_offline:
                    # (Sent by the new session, but its peer heard it go offline first.)
                    self.tainted.add(inv_id)
        eng = node.engine
        self.call_tainted.update(eng.calls, eng.local, eng.remote)
        for other_user, other in self.net.nodes.items():
            for rinv in other.engine.remote.values():
                if user in (rinv.caller, other_user) and rinv.phase is CalleePhase.ACCEPTING:
                    if "reaccept" not in rinv.timers:
                        # Its last quarter: the window may end before the accept goes again.
                        self.tainted.add(rinv.id)
                        continue
                    self.await_reaccept[rinv.id] = len(self.net.sent)
                    self.death_hit[rinv.id] = (rinv.caller, other_user)
        ringing = [i for i in (*eng.local, *eng.remote) if not self._tracked(eng, i).terminal]
        self.net.replace_session(user, seen_offline=seen_offline)
        # What the fresh session ended on its own (it tells the peer, with an End) may
        # cross the peer's own answer, a refusal or a cancel: both end, each its own way.
        self.tainted.update(i for i in ringing if self._tracked(eng, i).terminal)

    @staticmethod
    def _tracked(eng, inv_id: str):
        """The invitation (or call) of this id on an engine, if it has one."""
        return eng.local.get(inv_id) or eng.remote.get(inv_id) or eng.calls.get(inv_id)

    def _reaccepted(self, inv_id: str) -> bool:
        since = self.await_reaccept.get(inv_id)
        if since is None:
            return True
        if any(isinstance(m, Accept) and m.id == inv_id for _, _, m in self.net.sent[since:]):
            del self.await_reaccept[inv_id]
            return True
        return False

    @rule(callee=st.sampled_from(CALLEES))
    def logs_in_again(self, callee: str) -> None:
        if not self.net.nodes[callee].online:
            self.net.set_online(callee, True)

    # --- the network ----------------------------------------------------------------

    def _queue(self, link: tuple[str, str]) -> deque:
        return self.net.wire.setdefault(link, deque())

    @rule(link=st.sampled_from(LINKS))
    def deliver(self, link: tuple[str, str]) -> None:
        self.net.deliver_one(*link)

    @rule()
    def deliver_all(self) -> None:
        """Everything in flight arrives (a quiet moment): makes accepted calls common."""
        self.net.pump()

    @rule(link=st.sampled_from(LINKS))
    def duplicate(self, link: tuple[str, str]) -> None:
        q = self._queue(link)
        if q:
            # The same frame arrives twice (a resend after a resume, say).
            self.net.apply(link[1], self.net.nodes[link[1]].engine.receive(link[0], q[0]))

    @rule(user=st.sampled_from(("alice", *CALLEES)), count=st.integers(1, 3))
    def rate_limited(self, user: str, count: int) -> None:
        """The server refuses the user's next ``count`` sends as TOO_OFTEN."""
        self.net.too_often[user] = count

    @rule(link=st.sampled_from(LINKS))
    def drop(self, link: tuple[str, str]) -> None:
        q = self._queue(link)
        if q:
            msg = q.popleft()
            self.tainted.add(msg.id)
            if isinstance(msg, Hangup):
                self.hangups_lost[msg.id] += 1

    # --- time -----------------------------------------------------------------------

    def _quiet(self, a: str, b: str) -> bool:
        resending = any(k[0] == "resend" for user in (a, b) for k in self.net.nodes[user].timers)
        return not resending and not self._queue((a, b)) and not self._queue((b, a))

    def _fireable(self, user: str) -> list[tuple[str, str]]:
        node = self.net.nodes[user]
        keys = []
        for key in node.timers:
            kind, inv_key = key
            side, _, inv_id = inv_key.partition(":")
            if kind == "resend":
                keys.append(key)
                continue
            eng = node.engine
            tables = {"L": eng.local, "R": eng.remote, "C": eng.calls}
            inv = tables[side].get(inv_id)
            backstop = kind in BACKSTOPS or (side == "L" and kind == "lifetime")
            if backstop and (inv is None or not self._quiet(user, inv.peer)):
                continue
            if kind == "confirm" and not self._reaccepted(inv_id):
                # The window is longer than a server's death and a new login: the accept
                # goes again (at once, or by its reaccept timer) before it runs out.
                continue
            if side == "L" and kind == "lifetime" and inv is not None:
                # The caller's expiry runs lifetime + grace from the ACK, the callee's
                # lifetime from the invite's arrival: the callee's always fires first.
                peer = self.net.nodes[inv.peer]
                if ("lifetime", f"R:{inv.id}") in peer.timers:
                    continue
            keys.append(key)
        return sorted(keys)

    @rule(user=st.sampled_from(("alice", *CALLEES)), data=st.data())
    def fire_timer(self, user: str, data: st.DataObject) -> None:
        keys = self._fireable(user)
        if keys:
            key = data.draw(st.sampled_from(keys))
            del self.net.nodes[user].timers[key]
            self.net.apply(user, self.net.nodes[user].engine.timer_fired(key))

    # --- properties -----------------------------------------------------------------

    def _pairs(self):
        for inv in self.net.nodes["alice"].engine.local.values():
            rinv = self.net.nodes[inv.callee].engine.remote.get(inv.id)
            yield inv, rinv

    def _lost(self) -> set[str]:
        """Invitations a message of which was lost: dropped by the network, or refused as
        too often for longer than the invitation's window (the engine gave it up)."""
        gave_up = (k for node in self.net.nodes.values() for k in node.engine.gave_up)
        return self.tainted.union(gave_up)

    @invariant()
    def no_contradiction_and_agreement(self) -> None:
        for inv, rinv in self._pairs():
            if rinv is None or not (inv.terminal and rinv.terminal):
                continue
            pair = (inv.state, rinv.state)
            # (Compare with "is": LS and RS are IntEnums whose values overlap.)
            if inv.state is LS.ACCEPTED_BY_REMOTE or rinv.state is RS.ACCEPTED:
                failed = inv.state is LS.FAILURE or rinv.state is RS.FAILURE
                assert pair in AGREE or failed, pair
            if inv.id not in self._lost():
                assert pair in AGREE, (inv.id, pair)

    @invariant()
    def calls_end_alike(self) -> None:
        for call in self.net.nodes["alice"].engine.calls.values():
            other = self.net.nodes[call.callee].engine.calls.get(call.id)
            if other is None or call.id in self._lost() or call.id in self.call_tainted:
                continue
            if call.reason is not None and other.reason is not None and call.terminal:
                if other.terminal:
                    assert (call.reason, other.reason) in CALL_AGREE, (call.id, call, other)

    def _settle(self) -> None:
        for _ in range(200):
            self.net.pump()
            fired = False
            for user in ("alice", *CALLEES):
                keys = self._fireable(user)
                # (Accepts sent again only when nothing else is due.)
                keys = [k for k in keys if k[0] != "reaccept"] or keys
                if keys:
                    del self.net.nodes[user].timers[keys[0]]
                    self.net.apply(user, self.net.nodes[user].engine.timer_fired(keys[0]))
                    fired = True
            if not fired and not any(self.net.wire.values()):
                break

    def teardown(self) -> None:
        # Let the network drain and time run out: everything must end, in agreement.
        self._settle()
        # Calls stay on until someone hangs up: alice hangs up what is still on (either
        # side would do), and then every call must have ended on both live sides.
        for call in list(self.net.nodes["alice"].engine.active_calls()):
            self.net.call("alice", "hangup", call.id)
        self._settle()
        for user, node in self.net.nodes.items():
            if node.online:
                live = [
                    c for c in node.engine.live_calls() if self.hangups_lost[c.id] < HANGUP_TRIES
                ]
                assert not live, (user, live)
        for call in self.net.nodes["alice"].engine.calls.values():
            other = self.net.nodes[call.callee]
            if other.online and call.id in other.engine.calls:
                lost = self.hangups_lost[call.id] >= HANGUP_TRIES
                assert lost or other.engine.calls[call.id].terminal, call
        for user, node in self.net.nodes.items():
            assert not node.timers, (user, node.timers)
            assert not node.engine.live_invitations(), user
        self.calls_end_alike()
        self.no_contradiction_and_agreement()


Invitations.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestInvitations = Invitations.TestCase
