"""The control socket's protocol, in one process: a real server, a real logged-in Softphone
serving its socket, and hand-driven clients that misbehave. Every bad line gets a clear
answer (or the connection is closed), and the softphone keeps serving the next client.
Real time with short waits: a Unix socket is real I/O, which an autojump clock would race.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from rtmcall.cli.control.client import connect as control_connect
from rtmcall.cli.control.endpoint import start_control
from rtmcall.cli.control.wire import MAX_LINE, VERSION
from rtmcall.cli.local_files import control_dirs, socket_name
from rtmcall.cli.sinks import TextSink
from rtmcall.cli.softphone import Softphone
from rtmcall.client import connect
from rtmcall.server import serve


@asynccontextmanager
async def softphone_serving(
    user: str, also: str = ""
) -> AsyncIterator[tuple[Softphone, str, list[str]]]:
    """A server, ``user`` logged in with a Softphone whose lines go to a list, its socket
    (named after the server's URL, or after it and ``also`` as a ``--server`` list)."""
    lines: list[str] = []
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, "127.0.0.1", 0)
        async with connect(server.url, user) as client:
            phone = Softphone(client, TextSink(lines.append, lines.append))
            nursery.start_soon(phone.pump)
            listed = f"{server.url},{also}" if also else server.url
            control = await start_control(nursery, phone, user, listed)
            assert control is not None
            yield phone, server.url, lines
            await control.aclose()
        nursery.cancel_scope.cancel()


class RawClient:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = b""

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def recv(self) -> dict[str, Any] | None:
        with trio.fail_after(5):
            while b"\n" not in self.buf:
                try:
                    chunk = await self.stream.receive_some(65536)
                except trio.BrokenResourceError:  # reset: it hung up on unread data
                    return None
                if not chunk:
                    return None
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)  # type: ignore[no-any-return]


async def raw(user: str, url: str) -> RawClient:
    (folder,) = control_dirs()
    return RawClient(await trio.open_unix_socket(str(folder / socket_name(user, url))))


def hello(user: str, url: str, **extra: Any) -> bytes:
    obj = {"op": "hello", "version": VERSION, "user": user, "server": url, "what": "test", **extra}
    return (json.dumps(obj) + "\n").encode()


async def test_a_wrong_hello_is_refused_with_a_reason() -> None:
    async with softphone_serving("proto-alice1") as (_, url, _lines):
        client = await raw("proto-alice1", url)
        await client.send(hello("proto-mallory", url))
        answer = await client.recv()
        assert answer == {
            "op": "hello",
            "ok": False,
            "message": f"this softphone is proto-alice1 on {url}",
        }
        assert await client.recv() is None  # and it hangs up

        client = await raw("proto-alice1", url)
        await client.send(hello("proto-alice1", url, version=99))
        answer = await client.recv()
        assert answer is not None and "protocol version 99" in answer["message"]

        client = await raw("proto-alice1", url)
        await client.send(b"not json at all\n")
        answer = await client.recv()
        assert answer is not None and answer["message"] == "expected a hello line"


async def test_bad_lines_get_errors_and_the_connection_goes_on() -> None:
    async with softphone_serving("proto-alice2") as (phone, url, _lines):
        client = await raw("proto-alice2", url)
        await client.send(hello("proto-alice2", url))
        assert (await client.recv() or {}).get("ok") is True
        await client.send(b"{broken\n")
        assert await client.recv() == {"op": "error", "message": "unknown control line 'invalid'"}
        await client.send(b'{"op": "run", "seq": 1, "line": "dial bob"}\n')
        answer = await client.recv()
        assert answer is not None and answer["op"] == "error"
        assert "unknown command 'dial'" in answer["message"]
        assert await client.recv() == {"op": "done", "seq": 1}
        # A good command still works on the same connection.
        await client.send(b'{"op": "run", "seq": 2, "line": "call proto-nobody2"}\n')
        sent = await client.recv()
        assert sent is not None and sent["op"] == "sent"
        assert sent["info"]["callee"] == "proto-nobody2" and sent["peer_online"] is False
        assert await client.recv() == {"op": "done", "seq": 2}
        assert [i.callee for i in phone.infos()] == ["proto-nobody2"]  # in its table
        # Hanging up leaves nothing ringing: the softphone cancels that client's call.
        await client.stream.aclose()
        with trio.fail_after(5):
            while phone.pending_outgoing():
                await phone.wait_change()


async def test_an_endless_line_is_cut_and_the_next_client_is_served() -> None:
    async with softphone_serving("proto-alice3") as (_, url, _lines):
        client = await raw("proto-alice3", url)
        await client.send(hello("proto-alice3", url))
        assert (await client.recv() or {}).get("ok") is True
        try:
            with trio.fail_after(5):
                await client.send(b"x" * (MAX_LINE + 70_000))
        except trio.BrokenResourceError:
            pass  # it hung up while we were still sending: as it should
        assert await client.recv() is None
        link = await control_connect("proto-alice3", url, "test")
        assert link is not None  # the softphone serves on
        await link[0].aclose()


async def test_no_softphone_means_no_link() -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, "127.0.0.1", 0)
        assert await control_connect("proto-alice4", server.url, "test") is None
        (folder,) = control_dirs()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(str(folder / socket_name("proto-alice4", server.url)))
        stale.close()
        assert await control_connect("proto-alice4", server.url, "test") is None
        nursery.cancel_scope.cancel()


async def test_another_spelling_of_the_same_server_finds_the_softphone() -> None:
    async with softphone_serving("proto-alice5") as (_, url, _lines):
        spelling = url.replace("ws://", "WS://") + "/"  # ws://127.0.0.1:PORT → WS://…:PORT/
        link = await control_connect("proto-alice5", spelling, "test")
        assert link is not None
        await link[0].aclose()
        assert await control_connect("proto-alice5", url + "/other", "test") is None


async def test_a_softphone_that_refuses_is_not_kicked(monkeypatch: pytest.MonkeyPatch) -> None:
    # Another rtmcall version's one-shot: it must stop with the reason, not log in itself
    # (which would kick the softphone off the server).
    from rtmcall.cli.control import client as control_client

    async with softphone_serving("proto-alice6") as (phone, url, _lines):
        monkeypatch.setattr(control_client, "VERSION", 99)
        with pytest.raises(control_client.SoftphoneRefused, match="protocol version 99"):
            await control_connect("proto-alice6", url, "test")
        assert phone.ended is None


async def test_a_softphone_given_a_server_list_answers_for_each_of_its_urls() -> None:
    # `rtmcall login alice --server ws://a,ws://b` and `rtmcall call … --server ws://b`:
    # two nodes of one deployment; the one-shot must not log in and kick the softphone.
    other = "ws://127.0.0.1:9"
    async with softphone_serving("proto-alice7", also=other) as (_, url, _lines):
        for given in (url, other, f"WS://127.0.0.1:9/,{url}", f"ws://127.0.0.1:8,{other}"):
            link = await control_connect("proto-alice7", given, "test")
            assert link is not None, given
            await link[0].aclose()
        assert await control_connect("proto-alice7", "ws://127.0.0.1:8", "test") is None
        # A user whose name reads alike in a file name is refused, and the search goes on.
        assert await control_connect("proto alice7", url, "test") is None
        client = await raw("proto-alice7", f"{url},{other}")
        await client.send(hello("proto-alice7", "ws://127.0.0.1:8"))
        answer = await client.recv()
        assert answer is not None and answer["ok"] is False
