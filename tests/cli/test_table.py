"""build_table is pure: render it into a string console and read the text."""

from __future__ import annotations

import io

from rich.console import Console

from rtmcall.cli.console.table import Row, build_table, short_id
from rtmcall.engine.codes import (
    LocalInvitationError as LE,
)
from rtmcall.engine.codes import (
    LocalInvitationState as LS,
)
from rtmcall.engine.codes import (
    RemoteInvitationError as RE,
)
from rtmcall.engine.codes import (
    RemoteInvitationState as RS,
)


def render(rows: list[Row], now: float = 100.0, **kw: object) -> str:
    console = Console(file=io.StringIO(), width=140, color_system=None)
    console.print(build_table(rows, now, **kw))  # type: ignore[arg-type]
    return console.file.getvalue()  # type: ignore[attr-defined]


def out(i: str, state: LS, error: LE = LE.OK, **kw: object) -> Row:
    return Row(id=i * 8, direction="out", peer="bob", state=state, error=error, **kw)  # type: ignore[arg-type]


def inc(i: str, state: RS, error: RE = RE.OK, **kw: object) -> Row:
    return Row(id=i * 8, direction="in", peer="carol", state=state, error=error, **kw)  # type: ignore[arg-type]


def line_of(text: str, rid: str) -> str:
    return next(line for line in text.splitlines() if short_id(rid * 8) in line)


def test_columns_and_a_ringing_outgoing_row() -> None:
    text = render([out("a1", LS.RECEIVED_BY_REMOTE, content="hi", channel_id="c1", deadline=112.0)])
    for header in ("id", "dir", "peer", "state", "content", "channel", "response", "left"):
        assert header in text
    row = line_of(text, "a1")
    assert "a1a1a1" in row and "→ out" in row and "bob" in row and "ringing" in row
    assert "hi" in row and "c1" in row and "12s" in row


def test_countdown_shows_tenths_below_ten_seconds_and_never_negative() -> None:
    assert "2.5s" in render([out("a1", LS.SENT_TO_REMOTE, deadline=102.5)])
    assert "0.0s" in render([out("a1", LS.SENT_TO_REMOTE, deadline=90.0)])


def test_every_terminal_state_is_told_apart() -> None:
    rows = [
        out("a1", LS.ACCEPTED_BY_REMOTE, response="yes", live=False),
        out("a2", LS.REFUSED_BY_REMOTE, response="busy", live=False),
        out("a3", LS.CANCELED, live=False),
        out("a4", LS.FAILURE, LE.PEER_OFFLINE, live=False),
        out("a5", LS.FAILURE, LE.PEER_NO_RESPONSE, live=False),
        out("a6", LS.FAILURE, LE.INVITATION_EXPIRE, live=False),
        inc("b1", RS.ACCEPTED, live=False),
        inc("b2", RS.REFUSED, live=False),
        inc("b3", RS.CANCELED, live=False),
        inc("b4", RS.FAILURE, RE.ACCEPT_FAILURE, live=False),
        inc("b5", RS.FAILURE, RE.PEER_OFFLINE, live=False),
    ]
    text = render(rows)
    expected = {
        "a1": "accepted",
        "a2": "refused",
        "a3": "canceled",
        "a4": "failed: peer offline",
        "a5": "failed: no response",
        "a6": "failed: expired",
        "b1": "accepted",
        "b2": "refused",
        "b3": "canceled by caller",
        "b4": "failed: accept not confirmed",
        "b5": "failed: caller offline",
    }
    for rid, words in expected.items():
        assert words in line_of(text, rid), rid
    assert "yes" in line_of(text, "a1") and "busy" in line_of(text, "a2")


def test_incoming_ringing_row_is_marked_and_highlighted() -> None:
    text = render([inc("b1", RS.INVITATION_RECEIVED, deadline=130.0)])
    row = line_of(text, "b1")
    assert "← in" in row and "carol" in row and "RINGING" in row and "30s" in row
    table = build_table([inc("b1", RS.INVITATION_RECEIVED)], 0.0)
    assert table.rows[0].style and "on yellow" in str(table.rows[0].style)


def test_terminal_rows_have_no_countdown() -> None:
    row = out("a1", LS.CANCELED, live=False, deadline=105.0)
    assert "5.0s" not in render([row])


def test_max_rows_keeps_the_newest_and_says_so() -> None:
    rows = [out(str(i) + "x", LS.SENT_TO_REMOTE) for i in range(5)]
    text = render(rows, max_rows=2)
    assert "3x3x3x" in text and "4x4x4x" in text and "0x0x0x" not in text
    assert "3 older not shown" in text


def test_empty_table_says_what_to_do() -> None:
    assert "no invitations yet" in render([])


def test_long_content_is_cut_not_wrapped() -> None:
    text = render([out("a1", LS.SENT_TO_REMOTE, content="x" * 200)])
    assert len([line for line in text.splitlines() if "a1a1a1" in line]) == 1
    assert "…" in line_of(text, "a1")


def test_fits_an_80_column_terminal_by_shortening_free_text_only() -> None:
    rows = [
        out("a1", LS.ACCEPTED_BY_REMOTE, content="lunch at the usual place?", channel_id="room-42",
            response="on my way, see you there", live=False),
        out("a2", LS.FAILURE, LE.PEER_OFFLINE, live=False),
        inc("b1", RS.INVITATION_RECEIVED, content="hi", deadline=158.0),
    ]  # fmt: skip
    console = Console(file=io.StringIO(), width=79, color_system=None)
    console.print(build_table(rows, 100.0, width=79))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert max(len(line) for line in text.splitlines()) <= 79
    assert "left" in text and "58s" in text  # nothing is cut off on the right
    assert "failed: peer offline" in text and "RINGING" in text and "carol" in text
    assert "lunch at…" in text  # the free text gave way
    assert len(text.splitlines()) == 2 + len(rows)  # header, rule, one line per invitation


def test_a_wide_terminal_shows_long_texts_whole() -> None:
    content = "please join the incident bridge, the payment deploy failed"
    response = "joining in two minutes, start without me"
    rows = [
        out("a1", LS.ACCEPTED_BY_REMOTE, content=content, channel_id="incident-7",
            response=response, live=False),
        inc("b1", RS.INVITATION_RECEIVED, content="hi", deadline=158.0),
    ]  # fmt: skip
    for width, whole in ((160, True), (100, False), (79, False)):
        console = Console(file=io.StringIO(), width=width, color_system=None)
        console.print(build_table(rows, 100.0, width=width))
        text = console.file.getvalue()  # type: ignore[attr-defined]
        assert max(len(line) for line in text.splitlines()) <= width
        assert "58s" in text and "RINGING" in text  # nothing else is ever cut
        assert (content in text and response in text) is whole, text
        assert "incident-7" in text or width < 100
