"""Calls from the command line (SPEC §6) against a real server subprocess: hangup, busy,
DND, ``--hangup-after`` and ``rtmcall history``, over real processes and real time."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO, RTMCALL, cli_env
from .procs import Pipe

_names = itertools.count()


def user(name: str) -> str:
    return f"{name}c{next(_names)}"


@pytest.fixture
def login(server_url: str, config_dir: Path) -> Iterator:  # type: ignore[type-arg]
    pipes: list[Pipe] = []

    def start(who: str, *flags: str) -> Pipe:
        pipe = Pipe(["login", who, "--server", server_url, *flags, "--json"], config_dir)
        pipes.append(pipe)
        pipe.expect("LoginSuccess", user=who, timeout=10)
        return pipe

    try:
        yield start
    finally:
        for pipe in pipes:
            pipe.kill()


def history(config_dir: Path, *args: str) -> list[dict]:
    out = subprocess.run(
        [*RTMCALL, "history", *args, "--json"],
        capture_output=True,
        text=True,
        env=cli_env(config_dir),
        cwd=REPO,
        timeout=20,
    )
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_hangup_from_the_callee_and_history(login, config_dir: Path) -> None:  # type: ignore[no-untyped-def]
    a, b = user("alice"), user("bob")
    bob = login(b)
    alice = login(a)
    alice.send(f"call {b} --content lunch?")
    inv = alice.expect("LocalInvitationSent")["id"]
    bob.expect("RemoteInvitationReceived", id=inv)
    bob.send("accept --response ok")
    alice.expect("CallStarted", id=inv)
    bob.expect("CallStarted", id=inv)
    bob.send("sleep 1.2")
    bob.send("hangup")
    mine = bob.expect("CallEnded", id=inv)
    theirs = alice.expect("CallEnded", id=inv)
    assert list(mine) == ["event", "id", "caller", "callee", "reason", "duration"]
    assert (mine["caller"], mine["callee"], mine["reason"]) == (a, b, "HANGUP_LOCAL")
    assert theirs["reason"] == "HANGUP_REMOTE"
    assert 1.0 < mine["duration"] < 5 and 1.0 < theirs["duration"] < 5
    # Hanging up again: ALREADY_END, and nothing else happens.
    bob.send("hangup")
    err = bob.expect("ApiCallError", command="hangup")
    assert (err["error"], err["error_code"]) == ("ALREADY_END", 3)
    # bob's refused line makes his pipe exit 1 (issue 13 item 6); alice's had none.
    assert alice.finish() == 0 and bob.finish() == 1
    rows = {(r["user"], r["direction"]): r for r in history(config_dir)}
    out, inc = rows[(a, "out")], rows[(b, "in")]
    for row in (out, inc):
        assert row["id"] == inv and row["content"] == "lunch?" and row["missed"] is False
        assert 1.0 < row["duration"] < 5
        assert row["sent_at"] and row["rang_at"] and row["answered_at"] and row["ended_at"]
    assert (out["peer"], out["state"], out["reason"]) == (b, "ACCEPTED_BY_REMOTE", "HANGUP_REMOTE")
    assert (inc["peer"], inc["state"], inc["reason"]) == (a, "ACCEPTED", "HANGUP_LOCAL")
    assert history(config_dir, "--user", a, "--peer", b) == [out]
    # Into a pipe, the table is whole: nothing cut to fit the 80 columns Rich assumes.
    env = {k: v for k, v in cli_env(config_dir).items() if k != "COLUMNS"}
    text = subprocess.run(
        [*RTMCALL, "history"], capture_output=True, text=True, env=env, cwd=REPO, timeout=20
    ).stdout
    lines = [line for line in text.splitlines() if inv[:6] in line]
    assert len(lines) == 2 and "…" not in text, text
    assert all("lunch?" in line and "call" in line for line in lines), text
    assert {a, b} <= set(" ".join(lines).split()), text


def test_busy_refusal_dnd_and_missed_calls(login, config_dir: Path) -> None:  # type: ignore[no-untyped-def]
    a, b, c = user("alice"), user("bob"), user("carol")
    bob = login(b, "--when-busy", "refuse")
    alice, carol = login(a), login(c)
    alice.send(f"call {b}")
    first = alice.expect("LocalInvitationSent")["id"]
    bob.expect("RemoteInvitationReceived", id=first)
    carol.send(f"call {b}")  # while alice's call rings at bob
    second = carol.expect("LocalInvitationSent")["id"]
    refused = carol.expect("LocalInvitationRefused", id=second)
    assert refused["reason"] == "busy"
    bob.send("accept")
    alice.expect("CallStarted", id=first)
    carol.send(f"call {b}")  # while bob is in a call
    third = carol.expect("LocalInvitationSent")["id"]
    assert carol.expect("LocalInvitationRefused", id=third)["reason"] == "busy"
    alice.send("hangup")
    bob.expect("CallEnded", id=first, reason="HANGUP_REMOTE")
    bob.send("dnd on")
    assert bob.expect("Help")["lines"] == ["do not disturb is on: every call is refused as busy"]
    carol.send(f"call {b}")  # (only once bob's softphone has it on)
    fourth = carol.expect("LocalInvitationSent")["id"]
    assert carol.expect("LocalInvitationRefused", id=fourth)["reason"] == "busy"
    bob.send("dnd off")
    assert bob.expect("Help")["lines"] == ["do not disturb is off"]
    carol.send(f"call {b}")  # rings now; carol cancels: a missed call for bob
    fifth = carol.expect("LocalInvitationSent")["id"]
    bob.expect("RemoteInvitationReceived", id=fifth)
    carol.send(f"cancel {fifth}")
    bob.expect("RemoteInvitationCanceled", id=fifth)
    # A person's refusal is "declined".
    carol.send(f"call {b}")
    sixth = carol.expect("LocalInvitationSent")["id"]
    bob.expect("RemoteInvitationReceived", id=sixth)
    bob.send(f"refuse {sixth} --response later")
    assert carol.expect("LocalInvitationRefused", id=sixth)["reason"] == "declined"
    for p in (alice, bob, carol):
        assert p.finish() == 0
    missed = history(config_dir, "--user", b, "--missed")
    assert [r["id"] for r in missed] == [fifth]
    assert missed[0]["state"] == "CANCELED" and missed[0]["peer"] == c
    bobs = {r["id"]: r for r in history(config_dir, "--user", b)}
    assert bobs[second]["reason"] == "busy" and bobs[second]["state"] == "REFUSED"
    assert bobs[sixth]["reason"] == "declined"
    # Newest first.
    assert list(bobs) == [sixth, fifth, fourth, third, second, first]
    # The next login says how many calls were missed since the last session: none new.
    again = login(b)
    again.send("history --missed")
    entry = again.expect("HistoryEntry")
    assert entry["id"] == fifth and entry["missed"] is True
    assert again.finish() == 0
    assert not [o for o in again.json_lines() if o["event"] == "MissedCalls"]


def test_missed_call_line_at_login(login, server_url: str, config_dir: Path) -> None:  # type: ignore[no-untyped-def]
    a, b = user("alice"), user("bob")
    first = login(b)  # bob's last login session ...
    assert first.finish() == 0
    # ... then bob's one-shot answer is up while alice calls and gives up: missed.
    answer = Pipe(
        ["answer", "--user", b, "--server", server_url, "--delay", "30", "--json"], config_dir
    )
    try:
        answer.expect("LoginSuccess", timeout=10)
        alice = login(a)
        alice.send(f"call {b}")
        inv = alice.expect("LocalInvitationSent")["id"]
        answer.expect("RemoteInvitationReceived", id=inv)
        alice.send("cancel")
        answer.expect("RemoteInvitationCanceled", id=inv)
        answer.proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
        assert answer.finish() == 1
    finally:
        answer.kill()
    bob = login(b)
    line = bob.expect("MissedCalls")
    assert line == {"event": "MissedCalls", "count": 1, "peers": [a]}
    assert bob.finish() == 0


def test_one_shot_hangup_after(server_url: str, config_dir: Path) -> None:
    a, b = user("alice"), user("bob")
    answer = Pipe(
        ["answer", "--user", b, "--server", server_url, "--json", "--hangup-after", "30"],
        config_dir,
    )
    try:
        answer.expect("LoginSuccess", timeout=10)
        call = Pipe(
            ["call", b, "--user", a, "--server", server_url, "--json", "--hangup-after", "1"],
            config_dir,
        )
        ended = call.expect("CallEnded", timeout=15)
        assert ended["reason"] == "HANGUP_LOCAL" and 0.9 < ended["duration"] < 5
        assert call.finish() == 0
        # The callee wanted to hold it 30 s: the caller hung up first, not as asked.
        assert answer.expect("CallEnded", timeout=10)["reason"] == "HANGUP_REMOTE"
        assert answer.finish() == 1
    finally:
        answer.kill()


def test_corrupt_history_is_one_warning_and_the_softphone_goes_on(login, config_dir: Path) -> None:  # type: ignore[no-untyped-def]
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "calls.sqlite3").write_bytes(b"this is not a database" * 100)
    a, b = user("alice"), user("bob")
    bob = login(b)
    alice = login(a)
    alice.send(f"call {b}")
    inv = alice.expect("LocalInvitationSent")["id"]
    bob.expect("RemoteInvitationReceived", id=inv)
    bob.send("accept")
    alice.expect("CallStarted", id=inv)
    alice.send("hangup")
    bob.expect("CallEnded", id=inv)
    assert alice.finish() == 0 and bob.finish() == 0
    for p in (alice, bob):
        err = p.stderr()
        warnings = [ln for ln in err.splitlines() if "call history" in ln]
        assert len(warnings) == 1, err
        assert "going on without call history" in warnings[0]
        assert "Traceback" not in err
        assert not [o for o in p.json_lines() if o["event"] == "Error"]
    out = subprocess.run(
        [*RTMCALL, "history"], capture_output=True, text=True, env=cli_env(config_dir), cwd=REPO
    )
    assert out.returncode == 1 and "call history" in out.stderr and "Traceback" not in out.stderr


def test_when_busy_at_run_time(login) -> None:  # type: ignore[no-untyped-def]
    a, b, c = user("alice"), user("bob"), user("carol")
    bob, alice, carol = login(b), login(a), login(c)
    bob.send("when-busy refuse")
    assert bob.expect("Help")["lines"] == [
        "a call that comes while you are busy will be refused as busy"
    ]
    alice.send(f"call {b}")
    first = alice.expect("LocalInvitationSent")["id"]
    bob.expect("RemoteInvitationReceived", id=first)
    carol.send(f"call {b}")
    second = carol.expect("LocalInvitationSent")["id"]
    assert carol.expect("LocalInvitationRefused", id=second)["reason"] == "busy"
    for p in (alice, bob, carol):
        assert p.finish() == 0
