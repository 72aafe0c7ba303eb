"""``rtmcall scenario`` as CI runs it: the real program, exit codes 0/1/2, JUnit XML read
back with a JUnit parser, ``--json`` lines, ``--server`` against a real server process, and
Ctrl-C with a partial report."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from junitparser import Failure, JUnitXml

from .conftest import REPO, RTMCALL, cli_env, kill

QUICK = "config: {no_response_timeout: 2, lifetime: 3, confirm_timeout: 1}\n"
PASSING = f"""\
name: accepted
{QUICK}actors: {{alice: {{}}, bob: {{}}}}
steps:
  - alice: call bob --content "${{topic}}" --as c1
  - bob: expect RemoteInvitationReceived c1 content=${{topic}}
  - bob: accept c1 --response yes
  - alice: expect LocalInvitationAccepted c1 response=yes
vars: {{topic: lunch}}
"""
FAILING = f"""\
name: refused but expected accepted
{QUICK}actors: {{alice: {{}}, bob: {{}}}}
steps:
  - alice: call bob --as c1
  - bob: expect RemoteInvitationReceived c1
  - bob: refuse c1
  - alice: expect LocalInvitationAccepted c1 --within 1
"""


def run(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RTMCALL, "scenario", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(config),
        cwd=REPO,
    )


def test_pass_fail_and_junit(tmp_path: Path, config_dir: Path) -> None:
    (tmp_path / "a.yaml").write_text(PASSING)
    (tmp_path / "b.yaml").write_text(FAILING)
    report = tmp_path / "out" / "junit.xml"
    done = run(config_dir, str(tmp_path), "--junit", str(report))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "PASS accepted (" in done.stdout
    assert (
        "FAIL refused but expected accepted: step 4 (alice: expect LocalInvitationAccepted c1 "
        "--within 1): none within 1 s; alice's last events: " in done.stdout
    )
    assert "1 of 2 failed" in done.stdout
    xml = JUnitXml.fromfile(str(report))
    suites = list(xml)
    assert [s.tests for s in suites] == [1, 1] and sum(s.failures for s in suites) == 1
    cases = {case.name: case for suite in suites for case in suite}
    assert cases["accepted"].is_passed
    bad = cases["refused but expected accepted"]
    (failure,) = [r for r in bad.result if isinstance(r, Failure)]
    assert failure.message.startswith("step 4 (alice: expect LocalInvitationAccepted c1")
    assert "LocalInvitationRefused" in (bad.system_out or "")


def test_only_repeat_json_and_var(tmp_path: Path, config_dir: Path) -> None:
    (tmp_path / "a.yaml").write_text(PASSING)
    (tmp_path / "b.yaml").write_text(FAILING)
    done = run(
        config_dir, str(tmp_path), "--only", "acc*", "--repeat", "2", "--json",
        "--var", "topic=dinner",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    runs = [o for o in lines if o["type"] == "scenario"]
    assert [(o["name"], o["run"], o["ok"]) for o in runs] == [
        ("accepted", 1, True),
        ("accepted", 2, True),
    ]
    assert runs[0]["run_id"] != runs[1]["run_id"]
    steps = [o for o in lines if o["type"] == "step"]
    assert len(steps) == 8 and all(o["ok"] for o in steps)
    assert steps[0]["text"] == 'alice: call bob --content "dinner" --as c1'
    assert lines[-1] == {"type": "summary", "passed": 2, "failed": 0}


def test_bad_files_and_options_exit_2_and_start_nothing(tmp_path: Path, config_dir: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nactors: {a: {}}\nsteps:\n  - a: call b\n  - b: accept\n")
    done = run(config_dir, str(bad))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"rtmcall scenario: {bad}:5: steps[1].b: unknown actor 'b' (actors: a)"
    )
    assert done.stdout == ""
    server_step = tmp_path / "restart.yaml"
    server_step.write_text("name: r\nactors: {a: {}}\nsteps:\n  - server: restart\n")
    done = run(config_dir, str(server_step), "--server", "ws://127.0.0.1:9")
    assert done.returncode == 2 and "server steps need the embedded server" in done.stderr
    (tmp_path / "ok.yaml").write_text(PASSING)
    for args, words in [
        (["--only", "nope"], "--only 'nope': no scenario has that name"),
        (["--var", "no-equals"], "--var 'no-equals': write NAME=VALUE"),
        (["--server", "http://x"], "give a ws://HOST:PORT URL"),
        (["--server", "ws://127.0.0.1:99999"], "Port out of range"),
        (["--server", "ws://127.0.0.1:abc"], "give a ws://HOST:PORT URL"),
        (["--server", "ws://[::1"], "give a ws://HOST:PORT URL"),
        (["--server", "ws://127.0.0.1:9,ws://127.0.0.1:x"], "'ws://127.0.0.1:x'"),
        (["--repeat", "0"], "--repeat"),
    ]:
        done = run(config_dir, str(tmp_path / "ok.yaml"), *args)
        assert done.returncode == 2 and words in done.stderr, (args, done.stderr)
        if args[0] == "--server":
            assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    done = run(config_dir, str(tmp_path / "ok.yaml"), "--server", ",")
    assert done.returncode == 2 and "--server: no URL given" in done.stderr, done.stderr


def test_wrong_values_unknown_keys_and_reused_names_are_one_line_each_at_their_place(
    tmp_path: Path, config_dir: Path
) -> None:
    """Files an outside tester wrote: the first three made the loader spin for ever; the
    others were said at the wrong line, with a false second error, or not at all."""
    head = "name: x\nactors: {alice: {}, bob: {}}\nsteps:\n  - alice: call bob --as c1\n"
    cases = {
        "var-null.yaml": (
            "name: x\nvars: {topic: }\nactors: {alice: {}}\nsteps: []\n",
            ":2: vars.topic: a variable is text, a number or true/false, not null",
        ),
        "var-list.yaml": (
            "name: x\nvars: {peers: [bob, carol]}\nactors: {alice: {}}\nsteps: []\n",
            ":2: vars.peers: a variable is text, a number or true/false, not a list",
        ),
        "outcome-int.yaml": (
            head + "outcomes: {c1: 5}\n",
            ":5: outcomes.c1: an outcome is 'CALLER_STATE / CALLEE_STATE' or a list of them",
        ),
        "typo.yaml": (
            head + "outcome:\n  c1: CANCELED / CANCELED\n",
            ":5: outcome: unknown key 'outcome' (did you mean 'outcomes'? keys: name,",
        ),
        "dup-as.yaml": (
            head + "  - alice: call bob --as c1\n  - bob: accept c1\n",
            ":5: steps[1].alice: --as c1: 'c1' already names the invitation of "
            "steps[0].alice (line 4)",
        ),
        "actor-option.yaml": (
            head.replace("bob: {}", 'bob: {server: "1"}') + "  - bob: accept c1\n",
            ":2: actors.bob.server: Expected `int | null`, got `str`",
        ),
    }
    for name, (text, words) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        done = run(config_dir, str(path), timeout=20)
        assert done.returncode == 2, (name, done.stdout, done.stderr)
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"rtmcall scenario: {path}{words}"), (name, line)
        assert done.stdout == ""


def test_a_step_cut_off_by_the_timeout_is_the_failed_step_in_json_and_junit(
    tmp_path: Path, config_dir: Path
) -> None:
    (tmp_path / "t.yaml").write_text(
        "name: too slow\ntimeout: 1.5\nactors: {alice: {}, bob: {}}\nsteps:\n"
        "  - alice: call bob --as c1\n  - bob: expect RemoteInvitationCanceled c1 --within 30\n"
    )
    report = tmp_path / "junit.xml"
    done = run(config_dir, str(tmp_path), "--json", "--junit", str(report))
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    steps = [o for o in lines if o["type"] == "step"]
    assert [(o["step"], o["ok"]) for o in steps] == [("1", True), ("2", False)]
    assert steps[1]["message"] == "cut off: the scenario's timeout (1.5 s) ran out"
    (scenario,) = [o for o in lines if o["type"] == "scenario"]
    assert scenario["failed_step"] == "2"
    assert scenario["failure"] == (
        "the scenario's timeout (1.5 s) ran out at step 2 "
        "(bob: expect RemoteInvitationCanceled c1 --within 30)"
    )
    (case,) = [c for s in JUnitXml.fromfile(str(report)) for c in s]
    (failure,) = [r for r in case.result if isinstance(r, Failure)]
    assert "FAIL step 2 " in (failure.text or "")
    assert "cut off: the scenario's timeout (1.5 s) ran out" in (failure.text or "")


def test_list(tmp_path: Path, config_dir: Path) -> None:
    (tmp_path / "a.yaml").write_text(PASSING)
    done = run(config_dir, str(tmp_path), "--list")
    assert done.returncode == 0 and done.stdout.startswith(f"accepted  ({tmp_path / 'a.yaml'}:1)")


def test_against_a_real_server(tmp_path: Path, config_dir: Path, server_url: str) -> None:
    (tmp_path / "a.yaml").write_text(PASSING.replace("alice", "sc_alice").replace("bob", "sc_bob"))
    done = run(config_dir, str(tmp_path), "--server", server_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS accepted" in done.stdout


def test_runs_back_to_back_against_a_real_server_wait_out_its_login_rate(
    tmp_path: Path, config_dir: Path, server_url: str
) -> None:
    """A real server allows a user 2 logins a second; five runs of one scenario log the
    same users in faster than that. The set-up waits for the server rather than failing."""
    text = PASSING.replace("alice", "rr_alice").replace("bob", "rr_bob")
    (tmp_path / "a.yaml").write_text(text)
    done = run(config_dir, str(tmp_path), "--server", server_url, "--repeat", "5")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASS accepted") == 5


def test_ctrl_c_logs_out_writes_the_partial_report_and_exits_1(
    tmp_path: Path, config_dir: Path
) -> None:
    (tmp_path / "slow.yaml").write_text(
        "name: slow\nactors: {alice: {}}\nsteps:\n  - alice: call bob --as c1\n  - sleep: 60\n"
    )
    report = tmp_path / "junit.xml"
    proc = subprocess.Popen(
        [*RTMCALL, "scenario", str(tmp_path), "--junit", str(report)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=cli_env(config_dir), cwd=REPO,
    )  # fmt: skip
    try:
        time.sleep(3)  # a real process's start-up: the run is under way by then
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        kill(proc)
    assert proc.returncode == 1, out + err
    assert "FAIL slow: interrupted (Ctrl-C) at step 2 (sleep: 60)" in out
    (case,) = [c for s in JUnitXml.fromfile(str(report)) for c in s]
    assert not case.is_passed
    # The step it cut off is a failed step, as one that fails is.
    (failure,) = [r for r in case.result if isinstance(r, Failure)]
    assert "FAIL step 2 " in (failure.text or "")
    assert "cut off: interrupted (Ctrl-C)" in (failure.text or "")


def test_a_reader_that_stops_reading_ends_the_run_quietly(tmp_path: Path, config_dir: Path) -> None:
    """``rtmcall scenario … --json | head -1``: once the pipe is closed the run stops
    with 1 (not finished as asked, as click exits for the commands it runs itself), and
    says nothing on stderr (no traceback)."""
    (tmp_path / "a.yaml").write_text(PASSING)
    proc = subprocess.Popen(
        [*RTMCALL, "scenario", str(tmp_path / "a.yaml"), "--json", "--repeat", "50"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=cli_env(config_dir), cwd=REPO,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert json.loads(proc.stdout.readline())["type"] == "step"
        proc.stdout.close()  # (as head does once it has its line)
        err = proc.stderr.read()
        proc.wait(timeout=30)
    finally:
        kill(proc)
    assert proc.returncode == 1 and err == "", err


def test_on_a_terminal_the_steps_tick_live(tmp_path: Path, config_dir: Path) -> None:
    import pexpect

    (tmp_path / "a.yaml").write_text(
        PASSING.replace("  - bob: accept", "  - bob: net down 1\n  - sleep: 2\n  - bob: accept")
    )
    child = pexpect.spawn(
        RTMCALL[0], [*RTMCALL[1:], "scenario", str(tmp_path)],
        env=cli_env(config_dir, COLUMNS="120", LINES="30", NO_COLOR="1"), cwd=str(REPO),
        encoding="utf-8", timeout=30, dimensions=(30, 120),
    )  # fmt: skip
    try:
        child.expect("▶ accepted")
        # The actors' line while bob's network is down (bold is kept under NO_COLOR).
        child.expect(r"bob (\x1b\[[0-9;]*m)*line down")
        child.expect("RINGING")  # the invitations table
        child.expect("✓")
        child.expect("PASS accepted")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def test_an_unreachable_server_is_said_at_once(tmp_path: Path, config_dir: Path) -> None:
    from ..redis.redisproc import free_port

    (tmp_path / "a.yaml").write_text(PASSING)
    url = f"ws://127.0.0.1:{free_port()}"
    done = run(config_dir, str(tmp_path), "--server", url)
    assert done.returncode == 1
    assert f"FAIL accepted: set-up: cannot reach the server {url}: " in done.stdout


def test_a_server_of_several_that_does_not_answer_is_a_warning_and_the_run_goes_on(
    tmp_path: Path, config_dir: Path, server_url: str
) -> None:
    """A node that was killed before the run: its actors start on the next --server that
    answers (as behind a load balancer), the run passes, and stderr says so once, however
    many runs; in JSON each scenario line carries it too."""
    from ..redis.redisproc import free_port

    (tmp_path / "a.yaml").write_text(PASSING)
    dead = f"ws://127.0.0.1:{free_port()}"
    done = run(config_dir, str(tmp_path), "--server", dead, "--server", server_url,
               "--repeat", "2", "--json")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    warning = f"cannot reach the server {dead}: "
    assert done.stderr.count(warning) == 1 and "warning" in done.stderr, done.stderr
    assert "its actors (alice) start on the first other server that answers" in done.stderr
    runs = [json.loads(line) for line in done.stdout.splitlines()]
    runs = [r for r in runs if r["type"] == "scenario"]
    assert len(runs) == 2 and all(r["ok"] and warning in r["warnings"][0] for r in runs)
    # The same servers as one comma-separated --server (as the other commands take them).
    done = run(config_dir, str(tmp_path), "--server", f"{dead},{server_url}")
    assert done.returncode == 0 and done.stderr.count(warning) == 1, done.stdout + done.stderr

    # An actor placed on that server by its file is not moved: the set-up fails, saying so.
    (tmp_path / "a.yaml").write_text(PASSING.replace("alice: {}", "alice: {server: 0}"))
    done = run(config_dir, str(tmp_path), "--server", dead, "--server", server_url)
    assert done.returncode == 1
    assert f"set-up: alice's server ({{server: 0}}) does not answer: {dead}: " in done.stdout
