"""The observer alone (sans-IO): frames in, lifecycle events out, on a hand-moved clock."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from rtmcall.engine import frames as f
from rtmcall.engine.codes import PeerMessageError as PME
from rtmcall.server.observer import InvitationObserver, InvitationRecord, ObserverWindows

OK = int(PME.OK)
GONE = int(PME.PEER_UNREACHABLE)


@dataclass
class Sink:
    every_event = True
    events: list[tuple[str, str, str | None]] = field(default_factory=list)
    ended: dict[str, InvitationRecord] = field(default_factory=dict)
    #: The record of every event, by id.
    seen: dict[str, InvitationRecord] = field(default_factory=dict)

    def invitation_event(self, kind: str, record: InvitationRecord) -> None:
        self.events.append((kind, record.id, record.outcome))
        self.seen[record.id] = record
        if kind == "ended":
            assert record.id not in self.ended, "ended twice"
            self.ended[record.id] = record


class World:
    def __init__(self) -> None:
        self.now = 100.0
        self.sink = Sink()
        self.obs = InvitationObserver(
            "n0",
            lambda: self.now,
            lambda: 1_700_000_000 + self.now,
            [self.sink],
            ObserverWindows(no_response=30, lifetime=60, confirm=5, grace=5),
        )

    def caller(self, msg: f.PeerMsg, code: int = OK) -> None:
        self.obs.sent("alice", "s-alice", "bob", msg, code)

    def callee(self, msg: f.PeerMsg, code: int = OK) -> None:
        self.obs.sent("bob", "s-bob", "alice", msg, code)

    def tick(self, seconds: float) -> None:
        self.now += seconds
        self.obs.expire()

    def outcome(self, inv: str = "i1") -> tuple[str | None, str | None, bool]:
        r = self.sink.ended[inv]
        return (r.outcome, r.error.name if r.error else None, r.inferred)


def test_accept_and_its_setup_time() -> None:
    w = World()
    w.caller(f.Invite(id="i1"))
    w.tick(0.5)
    w.callee(f.Ack(id="i1"))
    w.tick(1.5)
    w.callee(f.Accept(id="i1", response="yes"))
    w.tick(0.1)
    w.caller(f.Confirm(id="i1"))
    assert w.outcome() == ("accepted", None, False)
    assert w.sink.ended["i1"].setup_seconds == 2.0
    assert [k for k, *_ in w.sink.events] == ["sent", "ringing", "ended"]


def test_an_accept_crossing_a_cancel_ends_canceled_and_a_refuse_crossing_it_refused() -> None:
    w = World()
    w.caller(f.Invite(id="i1"))
    w.callee(f.Ack(id="i1"))
    w.caller(f.Cancel(id="i1"))
    w.callee(f.Accept(id="i1"))
    w.caller(f.Cancel(id="i1"))  # the caller answers the accept with its cancel
    w.callee(f.CancelAck(id="i1"))
    assert w.outcome() == ("canceled", None, False)
    assert w.sink.ended["i1"].missed

    w.caller(f.Invite(id="i2"))
    w.callee(f.Ack(id="i2"))
    w.caller(f.Cancel(id="i2"))
    w.callee(f.Refuse(id="i2", response="no"))
    assert w.outcome("i2") == ("refused", None, False)
    assert not w.sink.ended["i2"].missed


def test_frames_after_the_end_and_from_strangers_change_nothing() -> None:
    w = World()
    w.caller(f.Invite(id="i1"))
    w.callee(f.Refuse(id="i1"))
    w.caller(f.Invite(id="i1"))  # a late repeat
    w.callee(f.Refuse(id="i1"))
    w.obs.sent("mallory", "s-m", "alice", f.Accept(id="i1"), OK)
    assert len(w.sink.ended) == 1 and not w.obs.open
    w.caller(f.Invite(id="i2"))
    w.obs.sent("mallory", "s-m", "alice", f.Refuse(id="i2"), OK)
    assert "i2" in w.obs.open


def test_a_callee_offline_then_the_caller_s_end() -> None:
    w = World()
    w.caller(f.Invite(id="i1"), GONE)
    w.caller(f.End(id="i1", reason="offline"), GONE)
    assert [k for k, *_ in w.sink.events] == ["sent", "callee_offline", "ended"]
    assert w.outcome() == ("failed", "PEER_OFFLINE", False)


def test_sessions_ending_fail_what_their_peers_engines_fail() -> None:
    w = World()
    w.caller(f.Invite(id="i1"))
    w.callee(f.Ack(id="i1"))
    w.obs.session_ended("bob", "an-older-bob")  # not the session that rang
    assert "i1" in w.obs.open
    w.obs.session_ended("bob", "s-bob")
    assert w.outcome() == ("failed", "PEER_OFFLINE", False)

    w.caller(f.Invite(id="i2"))
    w.obs.session_ended("alice", "s-alice")
    assert w.outcome("i2") == ("failed", "NOT_LOGGEDIN", False)
    assert w.sink.ended["i2"].callee_error.name == "PEER_OFFLINE"

    w.caller(f.Invite(id="i3"))
    w.caller(f.Cancel(id="i3"))  # not rung yet: the callee's offline ends it canceled
    w.obs.peer_offline("bob")  # (bob on another node)
    assert w.outcome("i3") == ("canceled", None, False)


def test_backstops_when_no_frame_comes() -> None:
    w = World()
    w.caller(f.Invite(id="never"), GONE)
    w.caller(f.Invite(id="mute"))
    w.caller(f.Invite(id="ring", lifetime=10))
    w.callee(f.Ack(id="ring"))
    w.caller(f.Invite(id="long"))
    w.callee(f.Ack(id="long"))  # rings for the default 60 s
    w.caller(f.Invite(id="acc"))
    w.callee(f.Accept(id="acc"))
    w.caller(f.Invite(id="can"))
    w.caller(f.Cancel(id="can"))
    w.tick(34.9)
    assert not w.sink.ended  # (backstops come up with the no-response window, 30 + 5 s)
    w.tick(0.2)
    assert w.outcome("never") == ("failed", "PEER_OFFLINE", True)
    assert w.outcome("mute") == ("failed", "PEER_NO_RESPONSE", True)
    assert w.outcome("ring") == ("failed", "INVITATION_EXPIRE", True)
    assert w.outcome("acc") == ("failed", "PEER_NO_RESPONSE", True)
    assert w.sink.ended["acc"].callee_error.name == "ACCEPT_FAILURE"
    assert w.outcome("can") == ("canceled", None, True)
    assert list(w.obs.open) == ["long"]
    assert w.obs.expire() == pytest.approx(100 + 65)  # its own lifetime, from its ring
    w.tick(29.8)
    assert "long" in w.obs.open
    w.tick(0.2)
    assert w.outcome("long") == ("failed", "INVITATION_EXPIRE", True)
    assert not w.obs.open and w.obs.expire() == float("inf")


def test_the_callee_s_answers_through_another_node() -> None:
    w = World()
    w.caller(f.Invite(id="i1"))
    w.obs.delivered(
        f.encode(f.Deliver(sender="bob", msg=f.Ack(id="i1"), seq=3)), "alice", "s-alice"
    )
    w.obs.delivered(
        f.encode(f.Deliver(sender="eve", msg=f.Refuse(id="i1"), seq=4)), "alice", "s-alice"
    )
    w.obs.delivered(b"not json", "alice", "s-alice")
    w.obs.delivered(
        f.encode(f.Deliver(sender="bob", msg=f.Text(text='"k":"end"'), seq=5)), "alice", "s-alice"
    )
    assert w.obs.open["i1"].ringing_at is not None
    w.obs.delivered(
        f.encode(f.Deliver(sender="bob", msg=f.Refuse(id="i1", response="x"))), "alice", "s-alice"
    )
    assert w.outcome() == ("refused", None, False)
    line = w.sink.ended["i1"].as_dict()
    assert line["callee_node"] is None and line["caller_node"] == "n0"
    assert line["sent_at"].endswith("Z") and line["response"] == "x"


def test_a_server_shutdown_ends_what_is_open_once() -> None:
    w = World()
    w.caller(f.Invite(id="i1"))
    w.callee(f.Ack(id="i1"))
    w.caller(f.Invite(id="i2"))
    w.callee(f.Refuse(id="i2"))
    w.obs.shutdown()
    assert w.outcome("i1") == ("failed", "NOT_LOGGEDIN", True)
    assert w.sink.ended["i1"].reason == "server_shutdown"
    assert w.outcome("i2") == ("refused", None, False)
    w.obs.session_ended("alice", "s-alice")
    assert len(w.sink.ended) == 2


def test_a_callee_logging_in_late_rings_after_one_callee_offline() -> None:
    w = World()
    w.caller(f.Invite(id="i1"), GONE)
    w.caller(f.Invite(id="i1"))  # the SDK sends it again when the callee comes online
    w.callee(f.Ack(id="i1"))
    w.callee(f.Accept(id="i1"))
    w.caller(f.Confirm(id="i1"))
    kinds = [k for k, *_ in w.sink.events]
    assert kinds == ["sent", "callee_offline", "ringing", "ended"]
    assert w.outcome() == ("accepted", None, False)
    assert w.sink.ended["i1"].as_dict()["callee_was_offline"] is True


def connect(w: World, inv: str) -> None:
    w.caller(f.Invite(id=inv))
    w.callee(f.Ack(id=inv))
    w.callee(f.Accept(id=inv))
    w.caller(f.Confirm(id=inv))
    assert inv in w.obs.calls


def call_end(w: World, inv: str) -> tuple[str | None, float | None]:
    """How the call ``inv`` ended and how long it was (its one ``call_ended``)."""
    assert [k for k, i, _ in w.sink.events if i == inv].count("call_ended") == 1
    record = w.sink.ended[inv]
    return (record.call_end, record.call_seconds)


def test_a_call_ends_at_the_first_hangup_between_its_parties() -> None:
    w = World()
    connect(w, "c1")
    w.tick(40)
    w.obs.sent("eve", "s-eve", "alice", f.Hangup(id="c1"), OK)  # a stranger: nothing
    w.obs.sent("alice", "s-alice", "eve", f.Hangup(id="c1"), OK)
    assert "c1" in w.obs.calls
    w.callee(f.Hangup(id="c1"), GONE)  # (undelivered: bob's side is over all the same)
    w.tick(1)
    w.caller(f.HangupAck(id="c1"))
    w.callee(f.Hangup(id="c1"))
    assert call_end(w, "c1") == ("hangup_by_callee", 40.0)
    # A HangupAck whose Hangup this node did not see tells who hung up.
    connect(w, "c2")
    w.tick(3)
    w.callee(f.HangupAck(id="c2"))
    assert call_end(w, "c2") == ("hangup_by_caller", 3.0)
    kinds = [k for k, i, _ in w.sink.events if i == "c2"]
    assert kinds == ["sent", "ringing", "ended", "call_ended"]
    assert not w.obs.calls and w.obs.calls_ended_total == 2


def test_a_callee_s_hangup_through_another_node_and_its_presence() -> None:
    w = World()
    w.obs.sent("alice", "s-alice", "bob", f.Invite(id="c1"), OK)
    for msg in (f.Ack(id="c1"), f.Accept(id="c1")):
        w.obs.delivered(f.encode(f.Deliver(sender="bob", msg=msg)), "alice", "s-alice")
    w.caller(f.Confirm(id="c1"))
    w.tick(2)
    w.obs.delivered(f.encode(f.Deliver(sender="eve", msg=f.Hangup(id="c1"))), "alice", "s-alice")
    assert "c1" in w.obs.calls
    w.obs.delivered(f.encode(f.Deliver(sender="bob", msg=f.Hangup(id="c1"))), "alice", "s-alice")
    assert call_end(w, "c1") == ("hangup_by_callee", 2.0)
    w.obs.sent("alice", "s-alice", "bob", f.Invite(id="c2"), OK)
    for msg in (f.Ack(id="c2"), f.Accept(id="c2")):
        w.obs.delivered(f.encode(f.Deliver(sender="bob", msg=msg)), "alice", "s-alice")
    w.caller(f.Confirm(id="c2"))
    w.obs.peer_offline("carol")
    w.tick(5)
    w.obs.peer_offline("bob")
    assert call_end(w, "c2") == ("callee_offline", 5.0)


def test_sessions_ending_the_backstop_and_the_shutdown_end_calls_once() -> None:
    w = World()
    w.obs.windows = ObserverWindows(no_response=30, lifetime=60, confirm=5, grace=5, call=3600)
    connect(w, "caller_left")
    connect(w, "callee_left")
    w.tick(10)
    w.obs.session_ended("alice", "s-other")  # another session of alice's: not this call's
    assert len(w.obs.calls) == 2
    w.obs.session_ended("bob", "s-bob")
    assert call_end(w, "caller_left") == ("callee_offline", 10.0)
    assert call_end(w, "callee_left") == ("callee_offline", 10.0)
    connect(w, "forever")
    w.tick(3599)
    w.obs.session_ended("alice", "s-alice")  # (already ended ones stay ended once)
    assert call_end(w, "forever") == ("caller_offline", 3599.0)
    connect(w, "long")
    for _ in range(3601):
        w.tick(1)
    assert call_end(w, "long") == ("max_duration", 3600.0)
    connect(w, "open")
    w.tick(60)
    w.obs.shutdown()
    assert call_end(w, "open") == ("server_shutdown", 60.0)
    assert w.sink.ended["open"].as_dict()["call_duration"] == 60.0
    assert not w.obs.calls


def test_a_caller_s_hangup_in_place_of_a_lost_confirm_ends_it_accepted() -> None:
    """A caller whose Confirm was lost with a server answers the callee's repeated accept
    with its hang-up (its call ended with its session): the callee's engine takes it as the
    Confirm, and so does the call log — accepted, then a call hung up by the caller."""
    w = World()
    w.caller(f.Invite(id="i1"))
    w.callee(f.Ack(id="i1"))
    w.callee(f.Accept(id="i1"))
    w.tick(1)
    w.callee(f.Accept(id="i1"))  # again: no Confirm came
    w.caller(f.Hangup(id="i1"))
    assert w.outcome() == ("accepted", None, False)
    assert [k for k, *_ in w.sink.events] == ["sent", "ringing", "ended", "call_ended"]
    assert w.sink.ended["i1"].call_end == "hangup_by_caller"


def test_a_caller_s_hangup_while_ringing_changes_nothing() -> None:
    w = World()
    w.caller(f.Invite(id="i1"))
    w.callee(f.Ack(id="i1"))
    w.caller(f.Hangup(id="i1"))  # the callee's engine ignores it too (not accepting)
    assert "i1" not in w.sink.ended
    w.callee(f.Refuse(id="i1"))
    assert w.outcome() == ("refused", None, False)


def test_a_caller_on_another_node_is_shadowed_and_logged_here_only_if_its_node_dies() -> None:
    """The callee's node follows invitations from callers on other nodes without a word
    (their node logs them); when that node dies with the caller's session, the callee's
    node logs what was open there: an invitation ringing, a call in progress."""
    w = World()  # node n0, bob's; alice is on node n9

    def from_alice(msg: f.PeerMsg) -> None:
        w.obs.delivered(f.encode(f.Deliver(sender="alice", msg=msg)), "bob", "s-bob")

    from_alice(f.Invite(id="r1", content="hi"))  # ringing when n9 dies
    w.callee(f.Ack(id="r1"))
    from_alice(f.Invite(id="c1"))  # a call when n9 dies
    w.callee(f.Ack(id="c1"))
    w.callee(f.Accept(id="c1"))
    from_alice(f.Confirm(id="c1"))
    from_alice(f.Invite(id="x1"))  # refused: over before n9 dies
    w.callee(f.Refuse(id="x1"))
    from_alice(f.Invite(id="x1"))  # (a late repeat of it)
    from_alice(f.Invite(id="h1"))  # hung up by the callee before
    w.callee(f.Ack(id="h1"))
    w.callee(f.Accept(id="h1"))
    from_alice(f.Confirm(id="h1"))
    w.callee(f.Hangup(id="h1"))
    assert w.sink.events == [] and not w.obs.open and not w.obs.calls
    assert sorted(w.obs.shadows) == ["r1"] and sorted(w.obs.shadow_calls) == ["c1"]
    w.tick(4)
    w.obs.node_gone("n9", ["carol"])  # (not alice's node)
    assert w.sink.events == []
    w.obs.node_gone("n9", ["alice", "carol"])
    assert w.outcome("r1") == ("failed", "NOT_LOGGEDIN", True)
    line = w.sink.ended["r1"].as_dict()
    assert (line["caller_node"], line["callee_node"]) == ("n9", "n0")
    assert (line["reason"], line["content"], line["missed"]) == ("caller_node_lost", "hi", True)
    # (its invitation.ended came from n9 at the accept: here only the call's end)
    assert [(k, i) for k, i, _ in w.sink.events if i == "c1"] == [("call_ended", "c1")]
    call = w.sink.seen["c1"].as_dict()
    assert (call["call_end"], call["call_duration"], call["caller_node"]) == (
        "caller_offline", 4.0, "n9",
    )  # fmt: skip
    assert not w.obs.shadows and not w.obs.shadow_calls and not w.obs.calls


def test_a_shadow_goes_when_its_caller_logs_out_or_its_callee_does() -> None:
    w = World()
    for inv, callee in (("a1", "bob"), ("a2", "dan")):
        delivery = f.encode(f.Deliver(sender="alice", msg=f.Invite(id=inv)))
        w.obs.delivered(delivery, callee, f"s-{callee}")
    w.obs.session_ended("dan", "s-dan")
    assert list(w.obs.shadows) == ["a1"]
    w.obs.caller_left("alice")  # (her node logs what she had)
    assert not w.obs.shadows
    w.obs.node_gone("n9", ["alice"])
    assert w.sink.events == []
    w.obs.delivered(f.encode(f.Deliver(sender="eve", msg=f.Invite(id="e1"))), "bob", "s-bob")
    w.tick(30 + 60 + 5 + 10)  # (every window out: its callee's engine gave up long ago)
    assert not w.obs.shadows and w.sink.events == []


def test_a_caller_who_moves_to_its_callee_s_node_is_followed_with_the_callee_s_session() -> None:
    """alice (on n9) calls bob (here, n0): this node shadows it. alice resumes here: her
    node's record comes along and replaces the shadow, which knew bob's session — so bob's
    session ending still ends the invitation, logged here once."""
    w = World()
    w.obs.delivered(f.encode(f.Deliver(sender="alice", msg=f.Invite(id="m1"))), "bob", "s-bob")
    w.callee(f.Ack(id="m1"))
    old = InvitationObserver("n9", lambda: 50.0, lambda: 1_700_000_050.0)
    old.sent("alice", "s-alice", "bob", f.Invite(id="m1"), OK)
    old.delivered(f.encode(f.Deliver(sender="bob", msg=f.Ack(id="m1"))), "alice", "s-alice")
    carried = old.session_moved("alice", "s-alice")
    assert not old.open and len(carried) == 1
    w.obs.adopt(carried)
    assert not w.obs.shadows and w.obs.open["m1"].callee_session == "s-bob"
    w.obs.session_ended("bob", "s-bob")
    assert w.outcome("m1") == ("failed", "PEER_OFFLINE", False)
    assert w.sink.ended["m1"].as_dict()["caller_node"] == "n0"


def test_memory_follows_the_calls_in_progress_not_the_calls_of_the_last_hours() -> None:
    """Every call, local or shadowed from another node, may last 12 hours: one hung up
    at once must not be remembered that long. Thousands of short calls leave the
    observer's backlog at about what is still going on; a call among them still ends at
    its maximum duration."""
    w = World()
    w.obs.windows = ObserverWindows(no_response=30, lifetime=60, confirm=5, grace=5, call=3600)
    connect(w, "long")

    def from_alice(msg: f.PeerMsg) -> None:
        w.obs.delivered(f.encode(f.Deliver(sender="alice", msg=msg)), "bob", "s-bob")

    for n in range(6000):
        connect(w, f"c{n}")
        w.caller(f.Hangup(id=f"c{n}"))
        from_alice(f.Invite(id=f"s{n}"))  # (alice on another node: a shadow here)
        w.callee(f.Accept(id=f"s{n}"))
        from_alice(f.Confirm(id=f"s{n}"))
        w.callee(f.Hangup(id=f"s{n}"))
        if n % 100 == 0:
            w.tick(1)
    w.tick(1)
    assert len(w.obs.calls) == 1 and not w.obs.shadows and not w.obs.shadow_calls
    backlog = len(w.obs._heap) + len(w.obs._shadow_heap)
    assert backlog < 2 * 1024 + 200, backlog  # (not 18,000: three entries per call)
    w.tick(3600 - 61)
    assert call_end(w, "long") == ("max_duration", 3600.0)
    assert len(w.sink.ended) == 6001
