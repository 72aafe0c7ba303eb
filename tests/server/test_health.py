"""The health check: a WebSocket opening request for /health is answered 200 or 503."""

from __future__ import annotations

import json

import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url
from typer.testing import CliRunner

from rtmcall.cli.cmd.health import _check_all
from rtmcall.cli.typer_app import app
from rtmcall.server import Health, MemoryHub, serve


class SickHub(MemoryHub):
    async def health(self) -> Health:
        return Health(False, "presence store unavailable")


async def test_a_healthy_node_answers_200(nursery: trio.Nursery, capsys) -> None:
    server = await nursery.start(serve, "127.0.0.1", 0)
    with pytest.raises(ConnectionRejected) as info:
        async with open_websocket_url(server.url + "/health"):
            pass
    assert info.value.status_code == 200
    assert json.loads(info.value.body)["ok"] is True
    assert await _check_all([server.url], 5, True, None) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


async def test_an_unhealthy_node_answers_503(nursery: trio.Nursery, capsys) -> None:
    server = await nursery.start(lambda task_status: serve(hub=SickHub(), task_status=task_status))
    with pytest.raises(ConnectionRejected) as info:
        async with open_websocket_url(server.url + "/health"):
            pass
    assert info.value.status_code == 503
    assert await _check_all([server.url], 5, False, None) == 1
    out = capsys.readouterr().out
    assert "UNHEALTHY" in out and "presence store unavailable" in out


async def test_other_paths_still_upgrade(nursery: trio.Nursery) -> None:
    server = await nursery.start(serve, "127.0.0.1", 0)
    async with open_websocket_url(server.url + "/anything") as ws:
        await ws.send_message('{"t":"login","user":"a"}')
        assert json.loads(await ws.get_message())["t"] == "login_ok"


def test_an_unreachable_node_exits_3() -> None:
    from ..redis.redisproc import free_port

    result = CliRunner().invoke(app, ["health", "--server", f"ws://127.0.0.1:{free_port()}"])
    assert result.exit_code == 3
    assert "cannot reach" in result.output


async def test_several_nodes_are_each_checked_one_line_each_the_worst_exit_code(
    nursery: trio.Nursery, capsys
) -> None:
    """``--server a,b,c`` (as the other commands take it): every node in the order given,
    healthy, unhealthy and unreachable, and the exit code of the worst."""
    from ..redis.redisproc import free_port

    well = await nursery.start(serve, "127.0.0.1", 0)
    sick = await nursery.start(lambda task_status: serve(hub=SickHub(), task_status=task_status))
    gone = f"ws://127.0.0.1:{free_port()}"
    assert await _check_all([well.url, sick.url], 5, False, None) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"healthy: {well.url}: ") and "memory hub" in lines[0]
    assert lines[1].startswith(f"UNHEALTHY: {sick.url}") and len(lines) == 2
    assert await _check_all([gone, well.url], 5, True, None) == 3
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(a["url"], a["ok"]) for a in answers] == [(gone, False), (well.url, True)]
    assert "cannot reach" in answers[0]["detail"]


@pytest.mark.parametrize("bad", ["ws://127.0.0.1:99999", "ws://127.0.0.1:abc", "ws://[::1"])
def test_a_bad_server_url_is_a_usage_error_not_a_traceback(bad: str) -> None:
    for command in (["health"], ["top", "--once"]):
        result = CliRunner().invoke(app, [*command, "--server", f"ws://127.0.0.1:1,{bad}"])
        assert result.exit_code == 2, (command, result.output)
        assert "--server" in result.output and "Traceback" not in result.output
