"""The table's call states (SPEC §6): ``in call 01:23`` running, how a call ended, and a
busy refusal, rendered from rows (pure)."""

from __future__ import annotations

from rtmcall.cli.formats.calls import clock
from rtmcall.engine.codes import CallEndReason
from rtmcall.engine.codes import LocalInvitationState as LS
from rtmcall.engine.codes import RemoteInvitationState as RS

from .test_table import inc, line_of, out, render


def test_in_call_runs_with_the_clock() -> None:
    rows = [out("a1", LS.ACCEPTED_BY_REMOTE, call_since=17.0, live=True)]
    assert "in call 01:23" in line_of(render(rows, now=100.0), "a1")
    assert "in call 01:24" in line_of(render(rows, now=101.2), "a1")
    assert "in call 1:00:00" in line_of(render(rows, now=3617.0), "a1")


def test_an_ended_call_says_how_and_how_long() -> None:
    rows = [
        out("a1", LS.ACCEPTED_BY_REMOTE, call_reason=CallEndReason.HANGUP_LOCAL,
            call_duration=83.4, live=False),
        inc("b1", RS.ACCEPTED, call_reason=CallEndReason.HANGUP_REMOTE, call_duration=5.0,
            live=False),
        inc("b2", RS.ACCEPTED, call_reason=CallEndReason.PEER_OFFLINE, call_duration=61,
            live=False),
    ]  # fmt: skip
    text = render(rows)
    assert "ended 01:23, hung up" in line_of(text, "a1")
    assert "ended 00:05, peer hung up" in line_of(text, "b1")
    assert "ended 01:01, peer offline" in line_of(text, "b2")


def test_busy_refusals_say_busy_and_declined_ones_do_not() -> None:
    rows = [
        out("a1", LS.REFUSED_BY_REMOTE, reason="busy", live=False),
        out("a2", LS.REFUSED_BY_REMOTE, reason="declined", live=False),
        inc("b1", RS.REFUSED, reason="busy", live=False),
    ]
    text = render(rows)
    assert "refused: busy" in line_of(text, "a1")
    assert "refused: busy" in line_of(text, "b1")
    assert "busy" not in line_of(text, "a2") and "refused" in line_of(text, "a2")


def test_clock() -> None:
    assert [clock(s) for s in (0, 59.9, 60, 3599, 3600, -3)] == [
        "00:00", "00:59", "01:00", "59:59", "1:00:00", "00:00",
    ]  # fmt: skip


def test_text_lines_of_a_busy_refusal() -> None:
    from rtmcall.cli.sinks import TextSink
    from rtmcall.engine import events as ev
    from rtmcall.engine.codes import RemoteInvitationError

    lines: list[str] = []
    sink = TextSink(write=lines.append, write_error=lines.append)

    def info(state: RS) -> ev.RemoteInvitationInfo:
        return ev.RemoteInvitationInfo(
            id="b1" * 8, caller="carol", callee="bob", content="", channel_id="", response="",
            state=state, error=RemoteInvitationError.OK, lifetime=None, reason="busy",
        )  # fmt: skip

    sink.event(ev.RemoteInvitationReceived(info(RS.INVITATION_RECEIVED)))
    sink.event(ev.RemoteInvitationRefused(info(RS.REFUSED)))
    # No "RINGING, type accept" for a call that never rang: one line, saying busy.
    assert len(lines) == 1 and lines[0].endswith("(busy)") and "RINGING" not in lines[0]


def test_list_lines_show_the_call() -> None:
    import time

    from rtmcall.cli.formats.rows import Row
    from rtmcall.cli.sinks import TextSink
    from rtmcall.engine import events as ev
    from rtmcall.engine.codes import LocalInvitationError

    info = ev.LocalInvitationInfo(
        id="a1" * 8, caller="alice", callee="bob", content="", channel_id="", response="",
        state=LS.ACCEPTED_BY_REMOTE, error=LocalInvitationError.OK, lifetime=None,
    )  # fmt: skip
    lines: list[str] = []
    TextSink(write=lines.append).listing(
        [info], [Row.from_info(info, live=False, call_since=time.monotonic() - 65)]
    )
    assert lines == ["a1a1a1  → out  bob  accepted [ACCEPTED_BY_REMOTE]  (in call 01:05)"]


def test_what_to_type_is_said_only_at_the_prompt() -> None:
    """Pipe mode and the one-shots print the call's lines without the prompt's hints."""
    from rtmcall.cli.formats.calls import MissedCalls
    from rtmcall.cli.sinks import TextSink
    from rtmcall.engine import events as ev

    call = ev.CallInfo(id="a1" * 8, caller="alice", callee="bob", direction="out")
    lines: list[str] = []
    TextSink(write=lines.append).event(ev.CallStarted(call))
    TextSink(write=lines.append).event(MissedCalls(2, ("carol",)))
    assert lines == [
        "call a1a1a1 with bob: in call",
        "2 missed calls since your last session (from carol)",
    ]
    prompt = type("PromptSink", (TextSink,), {"hints": True})(write=lines.append)
    prompt.event(ev.CallStarted(call))
    assert lines[-1] == "call a1a1a1 with bob: in call, type hangup to end it"
