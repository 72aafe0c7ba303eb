"""trio-websocket and wsproto are versions ``rtmcall/server/_ws.py`` was tested with
(issue 13 item 15): it uses their private parts, so an untested release must fail here,
loudly and by name, before it fails in production in ways no error names."""

from __future__ import annotations

import logging
import re
import tomllib
from pathlib import Path

import pytest
from trio.testing import memory_stream_pair
from trio_websocket import WebSocketConnection
from wsproto import ConnectionType, WSConnection

from rtmcall.cli.serverrun import ServerOptions, run_server
from rtmcall.server import _ws_check
from rtmcall.server._ws_check import TESTED, UntestedWebSocketLibrary

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_installed_versions_are_tested() -> None:
    problems = _ws_check.untested_versions()
    assert not problems, (
        "UNTESTED WebSocket library installed: "
        + "; ".join(problems)
        + ". rtmcall/server/_ws.py relies on its private parts: test this version (the"
        " whole suite), then widen TESTED in rtmcall/server/_ws_check.py and the pins in"
        " pyproject.toml together."
    )


def test_pyproject_pins_the_tested_range() -> None:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    for name, (oldest, newest) in TESTED.items():
        spec = next((d for d in deps if re.match(rf"{re.escape(name)}\b", d)), None)
        assert spec == f"{name}>={oldest},<={newest}", (name, spec)


def test_private_parts_are_where_ws_expects_them() -> None:
    assert _ws_check.missing_internals() == []


async def test_a_connections_private_state_is_there() -> None:
    """What ``_ws`` reads on every connection, on a real (unconnected) one."""
    a, _ = memory_stream_pair()
    conn = WebSocketConnection(a, WSConnection(ConnectionType.SERVER), max_message_size=10)
    for name in (
        "_send_channel",
        "_reader_running",
        "_wsproto",
        "_stream",
        "_stream_lock",
        "_close_reason",
        "_receive_buffer_size",
        "_max_message_size",
        "_message_parts",
        "_message_size",
    ):
        assert hasattr(conn, name), name
    assert conn._max_message_size == 10 and conn._message_parts == []


@pytest.mark.parametrize(
    ("name", "version"),
    [("trio-websocket", "0.13.0"), ("trio-websocket", "0.11.1"), ("wsproto", "1.4.0rc1")],
)
def test_an_untested_version_is_named(
    monkeypatch: pytest.MonkeyPatch, name: str, version: str
) -> None:
    real = _ws_check.metadata.version
    monkeypatch.setattr(
        _ws_check.metadata, "version", lambda dist: version if dist == name else real(dist)
    )
    monkeypatch.delenv(_ws_check.ALLOW_ENV, raising=False)
    oldest, newest = TESTED[name]
    assert _ws_check.untested_versions() == [
        f"{name} {version} is installed; tested: {oldest} to {newest}"
    ]
    with pytest.raises(UntestedWebSocketLibrary, match=re.escape(f"{name} {version}")) as err:
        _ws_check.check()
    assert "pip install" in str(err.value) and _ws_check.ALLOW_ENV in str(err.value)


def test_allowed_untested_version_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_ws_check.metadata, "version", lambda dist: "9.9.9")
    monkeypatch.setenv(_ws_check.ALLOW_ENV, "1")
    with caplog.at_level(logging.WARNING, logger="rtmcall.server"):
        _ws_check.check()
    assert "trio-websocket 9.9.9 is installed" in caplog.text


def test_missing_private_part_is_an_error_even_when_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(WebSocketConnection, "_get_request")
    monkeypatch.setenv(_ws_check.ALLOW_ENV, "1")
    with pytest.raises(UntestedWebSocketLibrary, match="WebSocketConnection._get_request"):
        _ws_check.check()


def test_rtmcall_server_refuses_an_untested_version(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The start-up check: ``rtmcall server`` says which version, exits 4 (cannot serve)."""
    real = _ws_check.metadata.version
    monkeypatch.setattr(
        _ws_check.metadata,
        "version",
        lambda dist: "0.13.0" if dist == "trio-websocket" else real(dist),
    )
    monkeypatch.delenv(_ws_check.ALLOW_ENV, raising=False)
    assert run_server(ServerOptions(host="127.0.0.1", port=0, log_level="ERROR")) == 4
    out, err = capsys.readouterr()
    assert out == ""
    assert "trio-websocket 0.13.0 is installed; tested: 0.12.0 to 0.12.2" in err
