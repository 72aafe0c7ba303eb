"""``rtmcall server`` with the operating flags, and ``rtmcall top``, as a user runs them:
real subprocesses, a real webhook receiver, SDK clients over real WebSockets, and
``top`` both as a plain snapshot (a pipe) and live in a pseudo-terminal (pexpect)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pexpect
import trio

from rtmcall.client import ClientConfig

from ..cli.conftest import REPO, RTMCALL, cli_env
from ..e2e.conftest import phone
from ..e2e.test_calls import call_events
from ..e2e.test_calls import ended as call_ended
from .receiver import Receiver
from .test_single_node import SECRET

FAST = ClientConfig(no_response_timeout=2.0, lifetime=3.0, confirm_timeout=1.0)


class ServerProc:
    def __init__(self, proc: trio.Process, url: str, lines: trio.MemoryReceiveChannel[str]):
        self.proc = proc
        self.url = url
        self.lines = lines

    async def next_json(self, within: float = 10.0) -> dict:
        with trio.fail_after(within):
            return json.loads(await self.lines.receive())


@asynccontextmanager
async def server_proc(tmp_path: Path, *flags: str) -> AsyncIterator[ServerProc]:
    """``rtmcall server --port 0 FLAGS`` in its own process; stdout lines as they come."""
    send, receive = trio.open_memory_channel[str](1000)
    async with trio.open_nursery() as nursery:
        err = (tmp_path / "server.err").open("wb")
        proc = await trio.lowlevel.open_process(
            [*RTMCALL, "server", "--port", "0", *flags],
            stdout=subprocess.PIPE,
            stderr=err,
            env=cli_env(tmp_path / "config"),
            cwd=REPO,
        )

        async def pump() -> None:
            assert proc.stdout is not None
            buffer = b""
            async for chunk in proc.stdout:
                buffer += chunk
                *done, buffer = buffer.split(b"\n")
                for line in done:
                    await send.send(line.decode())

        nursery.start_soon(pump)
        try:
            with trio.fail_after(15):
                first = await receive.receive()
            match = re.search(r"(wss?://\S+)", first)
            assert match, first
            yield ServerProc(proc, match.group(1), receive)
        finally:
            proc.terminate()
            with trio.move_on_after(10):
                await proc.wait()
            proc.kill()
            await proc.wait()
            err.close()
            nursery.cancel_scope.cancel()


async def test_call_log_on_stdout_webhooks_and_a_top_snapshot(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    receiver = await nursery.start(Receiver(SECRET).run)
    secret_file = tmp_path / "hook.key"
    secret_file.write_bytes(SECRET + b"\n")
    async with server_proc(
        tmp_path,
        "--metrics",
        "--call-log",
        "-",
        "--webhook",
        receiver.url("/ok"),
        "--webhook-secret-file",
        str(secret_file),
    ) as server:
        async with phone(server.url, "alice", FAST) as alice, phone(server.url, "bob", FAST) as bob:
            accepted = await alice.client.call("bob", content="hi")
            await bob.wait("RemoteInvitationReceived", accepted.id, 10)
            await bob.client.accept(accepted.id)
            await bob.wait("RemoteInvitationAccepted", accepted.id, 10)
            await alice.wait_for(lambda: bool(call_events(alice, "CallStarted", accepted.id)), 10)
            await alice.client.hangup(accepted.id)  # the accepted line: at the call's end
            await call_ended(bob, accepted.id, 10)
            refused = await alice.client.call("bob")
            await bob.wait("RemoteInvitationReceived", refused.id, 10)
            await bob.client.refuse(refused.id, response="busy")
            await alice.wait("LocalInvitationRefused", refused.id, 10)
            lines = [await server.next_json(), await server.next_json()]
            assert [(x["id"], x["outcome"]) for x in lines] == [
                (accepted.id, "accepted"),
                (refused.id, "refused"),
            ]
            assert lines[0]["call_end"] == "hangup_by_caller"
            assert 0 <= lines[0]["call_duration"] < 10
            assert lines[1]["call_end"] is None and lines[1]["call_duration"] is None
            snapshot = await trio.run_process(
                [*RTMCALL, "top", "--server", server.url, "--interval", "0.3"],
                capture_stdout=True,
                env=cli_env(tmp_path / "config"),
                cwd=REPO,
            )
        text = snapshot.stdout.decode()
        assert "\x1b[" not in text  # plain text, not a live screen
        row = next(line for line in text.splitlines() if server.url.split("//")[1] in line)
        cells = [c.strip() for c in re.split(r"[│┃|]", row) if c.strip()]
        # node, status, users, calls/s, live, in call, accepted, refused, canceled, ...
        assert cells[1] == "up" and cells[2] == "2"
        assert cells[5:11] == ["0", "1", "1", "0", "0", "0"]
        await receiver.wait_for(
            lambda: sum(e["type"] == "invitation.ended" for e in receiver.accepted()) == 2
        )
        ended = [e["data"] for e in receiver.accepted() if e["type"] == "invitation.ended"]
        assert {(e["id"], e["outcome"]) for e in ended} == {
            (accepted.id, "accepted"),
            (refused.id, "refused"),
        }
        assert all(d.signature_ok for d in receiver.requests)


async def test_top_is_live_on_a_terminal_and_q_quits(tmp_path: Path) -> None:
    async with server_proc(tmp_path, "--metrics") as server:
        async with phone(server.url, "carol", FAST):
            child = pexpect.spawn(
                sys.executable,
                ["-m", "rtmcall.cli", "top", "--server", server.url, "--interval", "0.2"],
                env=cli_env(tmp_path / "config"),
                cwd=str(REPO),
                dimensions=(30, 200),
                encoding="utf-8",
            )
            try:
                await trio.to_thread.run_sync(
                    lambda: child.expect(
                        r"(?s)q quits.*up\s*(\x1b\[[0-9;]*m)*\s*│\s+1 │", timeout=15
                    )
                )
                child.send("q")
                await trio.to_thread.run_sync(lambda: child.expect(pexpect.EOF, timeout=10))
                child.close()
                assert child.exitstatus == 0
            finally:
                child.close(force=True)


def test_bad_webhook_input_is_one_line_and_the_usage_code(tmp_path: Path) -> None:
    good_secret = tmp_path / "k"
    good_secret.write_text("s3cret")
    cases = [
        (
            ["--webhook", "ftp://example.com/x", "--webhook-secret-file", str(good_secret)],
            "--webhook",
        ),
        (["--webhook", "http://", "--webhook-secret-file", str(good_secret)], "--webhook"),
        (
            ["--webhook", "http://127.0.0.1:9/x", "--webhook-secret-file", str(tmp_path / "none")],
            "--webhook-secret-file",
        ),
        (["--webhook", "http://127.0.0.1:9/x"], "--webhook-secret-file"),
    ]
    for flags, param in cases:
        done = subprocess.run(
            [*RTMCALL, "server", "--port", "0", *flags],
            capture_output=True,
            text=True,
            env=cli_env(tmp_path / "config"),
            cwd=REPO,
            timeout=20,
        )
        assert done.returncode == 2, (flags, done.stderr)
        assert done.stdout == ""
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"rtmcall server: {param}: "), line


async def test_a_call_log_that_cannot_be_written_is_one_warning_and_serving_goes_on(
    tmp_path: Path,
) -> None:
    target = tmp_path / "no" / "such" / "dir" / "calls.jsonl"
    async with server_proc(tmp_path, "--call-log", str(target)) as server:
        for _ in range(2):
            async with (
                phone(server.url, "alice", FAST) as alice,
                phone(server.url, "bob", FAST) as bob,
            ):
                inv = await alice.client.call("bob")
                await bob.wait("RemoteInvitationReceived", inv.id, 10)
                await bob.client.accept(inv.id)
                await alice.wait("LocalInvitationAccepted", inv.id, 10)
    err = (tmp_path / "server.err").read_text()
    warnings = [line for line in err.splitlines() if "call log" in line]
    assert len(warnings) == 1, err
    assert "cannot be written" in warnings[0] and str(target) in warnings[0]
    assert server.proc.returncode == 0
