"""Plain-language messages (issue 13, item 8): a refused command says, in the user's words,
which call (the 6-character id of the table) and what is wrong, with Agora's code in
brackets; nothing of the engine's vocabulary (32-digit ids, ``create_local_invitation``,
``cannot be done … in state …``) reaches the text output. Units over real engine errors,
then the real program against a real server."""

# ruff: noqa: E501 - the table of cases reads best one case a line

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from rtmcall.cli.formats import text as textfmt
from rtmcall.engine.events import ApiCallError
from rtmcall.engine.frames import MAX_LIFETIME
from tests.engine.network import Network

from .conftest import REPO, RTMCALL, cli_env
from .procs import Pipe

LEAKS = re.compile(r"[0-9a-f]{32}|create_local_invitation|cannot be done|in state|insecure=True")


def _net() -> Network:
    net = Network()
    net.add("alice"), net.add("bob")
    return net


def _ringing(net: Network) -> str:
    inv = net.nodes["alice"].engine.create_local_invitation("bob")
    net.call("alice", "send", inv)
    net.pump()
    return inv.id


def _refusal(call: Callable[[], object]) -> ApiCallError:
    with pytest.raises(ApiCallError) as info:
        call()
    return info.value


def _text(net: Network, user: str, command: str, inv_id: str, exc: ApiCallError) -> str:
    engine = net.nodes[user].engine
    obj = engine.local.get(inv_id) or engine.remote.get(inv_id)
    return textfmt.api_call_error(exc, command, obj.info() if obj else None, None)


def _after(*steps: tuple[str, str]) -> Callable[[], tuple[Network, str]]:
    def make() -> tuple[Network, str]:
        net = _net()
        inv_id = _ringing(net)
        for user, what in steps:
            if what == "pump":
                net.pump()
            else:
                net.call(user, what, inv_id)
        return net, inv_id

    return make


# (what was done before, who types, the command, the words expected, the code)
CASES = [
    (_after(("bob", "refuse"), ("", "pump")), "alice", "cancel", "that call already ended", "ALREADY_END"),
    (_after(("alice", "cancel")), "alice", "cancel", "you already canceled that call", "ALREADY_END"),
    (_after(("bob", "accept")), "bob", "accept", "you already accepted that call", "ALREADY_ACCEPT"),
    (_after(("bob", "accept")), "bob", "refuse", "you already accepted that call; it can no longer be refused", "ALREADY_ACCEPT"),
    (_after(("bob", "accept"), ("", "pump")), "bob", "refuse", "that call already ended", "ALREADY_END"),
    (_after(), "alice", "accept", "only the callee can accept; this is your call to bob", "INVALID_ARGUMENT"),
    (_after(), "alice", "refuse", "only the callee can refuse; this is your call to bob", "INVALID_ARGUMENT"),
    (_after(), "bob", "cancel", "only the caller can cancel; this call is from alice (refuse it)", "INVALID_ARGUMENT"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "user", "command", "words", "code"), CASES)
def test_refusals_in_words(make, user: str, command: str, words: str, code: str) -> None:  # type: ignore[no-untyped-def]
    net, inv_id = make()
    engine = net.nodes[user].engine
    exc = _refusal(lambda: getattr(engine, command)(inv_id))
    assert exc.code.name == code
    assert _text(net, user, command, inv_id, exc) == f"{command} {inv_id[:6]}: {words} [{code}]"
    assert inv_id in exc.message  # the engine's message stays precise (JSON "message")


def test_sdk_only_refusals_in_words() -> None:
    net = _net()
    a = net.nodes["alice"].engine
    inv = a.create_local_invitation("bob")
    exc = _refusal(lambda: a.cancel(inv))
    assert textfmt.api_call_error(exc, "cancel", inv.info()) == (
        f"cancel {inv.id[:6]}: that call was not sent yet [NOT_STARTED]"
    )
    net.call("alice", "send", inv)
    exc = _refusal(lambda: a.send(inv))
    assert textfmt.api_call_error(exc, "send", inv.info()) == (
        f"send {inv.id[:6]}: that call was already sent [ALREADY_SENT]"
    )


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"callee": "alice"}, "you cannot invite yourself"),
        ({"callee": "bob", "content": "x" * 8193}, "content is longer than 8 KB of UTF-8"),
        ({"callee": "bob", "channel_id": "c" * 65}, "channel_id is longer than 64 bytes"),
        ({"callee": "bob", "lifetime": 0}, f"at most {MAX_LIFETIME:g} seconds"),
        ({"callee": "bad/peer"}, 'outside a-z, A-Z, 0-9, space and "!#$%&()+-:;<=.>?@[]^_{}|~,"'),
    ],
)
def test_a_refused_call_names_the_peer_and_the_problem(kwargs: dict, words: str) -> None:  # type: ignore[type-arg]
    a = _net().nodes["alice"].engine
    exc = _refusal(lambda: a.create_local_invitation(**kwargs))
    line = textfmt.api_call_error(exc, "call", None, kwargs["callee"])
    assert line.startswith(f"call {kwargs['callee']}: ") and line.endswith(" [INVALID_ARGUMENT]")
    assert words in line and not LEAKS.search(line)


def test_the_response_limit_and_an_unknown_id_in_words() -> None:
    net = _net()
    inv_id = _ringing(net)
    b = net.nodes["bob"].engine
    exc = _refusal(lambda: b.accept(inv_id, "x" * 8193))
    assert _text(net, "bob", "accept", inv_id, exc) == (
        f"accept {inv_id[:6]}: the response is longer than 8 KB of UTF-8 [INVALID_ARGUMENT]"
    )
    exc = _refusal(lambda: b.refuse("ffff"))
    assert textfmt.api_call_error(exc, "refuse", None) == (
        "refuse ffff: no call has that id (type list to see them) [INVALID_ARGUMENT]"
    )


# --- the real program -------------------------------------------------------------------


def test_refusals_in_pipe_mode_are_plain(server_url: str, config_dir: Path) -> None:
    bob = Pipe(["login", "msg-bob", "--server", server_url], config_dir)
    alice = Pipe(["login", "msg-alice", "--server", server_url], config_dir)
    try:
        bob.expect_line(lambda line: "logged in" in line)
        alice.expect_line(lambda line: "logged in" in line)
        alice.send("call msg-bob --content hi")
        short = alice.expect_line(lambda line: ": sent" in line).split()[1]
        bob.expect_line(lambda line: "RINGING" in line)
        alice.send(f"accept {short}")
        bob.send("refuse")
        alice.expect_line(lambda line: "REFUSED" in line)
        alice.send(f"cancel {short}")
        alice.send("call msg-alice")
        alice.send("online bad/peer")
        assert alice.finish() == 1 and bob.finish() == 0
        err = alice.stderr().splitlines()
        assert err[:4] == [
            f"accept {short}: only the callee can accept; this is your call to msg-bob"
            " [INVALID_ARGUMENT]",
            f"cancel {short}: that call already ended [ALREADY_END]",
            "call msg-alice: you cannot invite yourself [INVALID_ARGUMENT]",
            "online: user id 'bad/peer' has characters outside a-z, A-Z, 0-9, space and"
            ' "!#$%&()+-:;<=.>?@[]^_{}|~,"',
        ]
        assert not any(LEAKS.search(line) for line in err)
    finally:
        alice.kill()
        bob.kill()


def test_json_keeps_the_precise_message(server_url: str, config_dir: Path) -> None:
    alice = Pipe(["login", "msg-carol", "--server", server_url, "--json"], config_dir)
    try:
        alice.send("cancel ffff")
        err = alice.expect("ApiCallError")
        assert err["error"] == "INVALID_ARGUMENT" and "ffff" in err["message"]
        assert alice.finish() == 1
    finally:
        alice.kill()


def _run(args: list[str], config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RTMCALL, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=cli_env(config),
        cwd=REPO,
        timeout=20,
    )


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("command", [["login", "alice"], ["call", "bob", "--user", "alice"]])
def test_cannot_reach_names_the_url_once_and_suggests_a_server(
    config_dir: Path, command: list[str]
) -> None:
    port = _free_port()
    url = f"ws://127.0.0.1:{port}"
    done = _run([*command, "--server", url], config_dir)
    assert done.returncode == 3
    (line,) = done.stderr.strip().splitlines()
    assert line.count(url) == 1 and line.count(str(port)) == 2  # the URL, and the hint's port
    assert "connection refused" in line and f'"rtmcall server --port {port}"' in line
    assert "all attempts" not in line and "Error connecting" not in line


def test_a_public_host_without_a_secret_is_refused_in_flags(config_dir: Path) -> None:
    done = _run(["server", "--host", "0.0.0.0", "--port", "0"], config_dir)
    assert done.returncode == 2
    assert "--insecure" in done.stderr and "--secret-file" in done.stderr
    assert "insecure=True" not in done.stderr and "Traceback" not in done.stderr


def test_list_and_connection_lines_are_plain(server_url: str, config_dir: Path) -> None:
    alice = Pipe(
        ["login", "msg-dave", "--server", server_url, "--no-response-timeout", "0.2"], config_dir
    )
    try:
        alice.send("call msg-nobody --content hi")
        short = alice.expect_line(lambda line: ": sent" in line).split()[1]
        alice.expect_line(lambda line: "FAILED" in line)
        alice.send("list")
        listed = alice.expect_line(lambda line: line.startswith(short))
        assert listed == (
            f"{short}  → out  msg-nobody  failed: peer offline (content 'hi')"
            " [FAILURE, PEER_OFFLINE]"
        )
        assert alice.finish() == 0
        assert alice.lines[-1] == "logged out [DISCONNECTED, LOGOUT]"
        assert not any(LEAKS.search(line) for line in alice.lines)
    finally:
        alice.kill()


def test_the_console_says_it_in_words_too(server_url: str, config_dir: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    import sys

    env = cli_env(config_dir, NO_COLOR="1", PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "rtmcall.cli", "login", "msg-erin", "--server", server_url],
        env=env,
        cwd=str(REPO),
        dimensions=(30, 150),
        encoding="utf-8",
        timeout=8,
    )
    try:
        child.expect_exact("msg-erin>")
        child.send("call msg-nobody-here --no-such-flag\r")
        child.expect("unknown option --no-such-flag")
        child.send("call msg-nobody-here\r")
        child.expect(r"call ([0-9a-f]{6}) to msg-nobody-here: sent")
        short = child.match.group(1)
        child.send(f"accept {short}\r")
        child.expect_exact(
            f"accept {short}: only the callee can accept; this is your call to msg-nobody-here"
            " [INVALID_ARGUMENT]"
        )
        child.send("quit\r")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
