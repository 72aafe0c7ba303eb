"""Is the installed trio-websocket / wsproto one that :mod:`._ws` was tested with?

:mod:`._ws` subclasses trio-websocket's connection and restates parts of it, and reaches
into wsproto's frame and message decoders (its docstring lists what). Those are private:
a release may change them without notice, and the server would then misbehave in ways no
error names (a pong half sent, a limit not enforced). So ``pyproject.toml`` pins the
versions tested (:data:`TESTED`, the same ranges; ``tests/server/test_ws_versions.py``
keeps the two equal and fails, naming the version, when an untested one is installed),
and :func:`check` runs when a server starts: an untested version, or one whose private
parts are not where :mod:`._ws` expects them, stops it with one line that says which
package, which version and what to install. ``RTMCALL_ALLOW_UNTESTED_WEBSOCKET=1`` turns
the version check into a warning (the private parts are still checked).
"""

from __future__ import annotations

import logging
import os
import re
from importlib import metadata

log = logging.getLogger("rtmcall.server")

#: Distribution name -> (oldest, newest) release :mod:`._ws` was tested with, inclusive.
#: Tested: trio-websocket 0.12.0, 0.12.1, 0.12.2 (0.12.x differ in one client-side
#: line); wsproto 1.2.0 and 1.3.2.
TESTED: dict[str, tuple[str, str]] = {
    "trio-websocket": ("0.12.0", "0.12.2"),
    "wsproto": ("1.2.0", "1.3.2"),
}

#: Set to 1 to run with an untested version anyway (a warning instead of an error).
ALLOW_ENV = "RTMCALL_ALLOW_UNTESTED_WEBSOCKET"

_RELEASE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?$")


class UntestedWebSocketLibrary(RuntimeError):
    """The installed trio-websocket or wsproto is not one the server was tested with."""


def _release(version: str) -> tuple[int, int, int] | None:
    """``"0.12.2"`` -> (0, 12, 2); None for anything but a plain release (``1.4.0rc1``)."""
    match = _RELEASE.match(version)
    if match is None:
        return None
    return int(match[1]), int(match[2]), int(match[3] or 0)


def untested_versions() -> list[str]:
    """One line per package whose installed version is outside :data:`TESTED`."""
    problems = []
    for name, (oldest, newest) in TESTED.items():
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed (tested: {oldest} to {newest})")
            continue
        release = _release(version)
        if release is None or not _release(oldest) <= release <= _release(newest):  # type: ignore[operator]
            problems.append(f"{name} {version} is installed; tested: {oldest} to {newest}")
    return problems


def missing_internals() -> list[str]:
    """The private names :mod:`._ws` uses that the installed libraries lack."""
    from trio_websocket import WebSocketConnection
    from wsproto import ConnectionType, WSConnection
    from wsproto import frame_protocol as fp

    missing = [
        f"trio_websocket.WebSocketConnection.{name}"
        for name in (
            "_get_request",
            "_send",
            "_close_stream",
            "_abort_web_socket",
            "_close_web_socket",
            "_handle_accept_connection_event",
            "_handle_message_event",
            "_handle_close_connection_event",
            "_handle_ping_event",
            "_handle_pong_event",
            "_handle_reject_connection_event",
            "_handle_reject_data_event",
            "_handle_request_event",
            "_reader_task",
        )
        if not hasattr(WebSocketConnection, name)
    ]
    proto = fp.FrameProtocol(client=False, extensions=[])
    for owner, names in (
        (proto, ("_frame_decoder", "_message_decoder")),
        (getattr(proto, "_frame_decoder", None), ("header", "buffer")),
        (getattr(proto, "_message_decoder", None), ("opcode", "decoder", "process_frame")),
        (WSConnection(ConnectionType.SERVER), ("handshake", "connection")),
    ):
        missing += [f"wsproto {type(owner).__name__}.{n}" for n in names if not hasattr(owner, n)]
    for name in ("MessageDecoder", "ParseFailed", "Frame", "CloseReason"):
        if not hasattr(fp, name):
            missing.append(f"wsproto.frame_protocol.{name}")
    return missing


def check() -> None:
    """Raise :class:`UntestedWebSocketLibrary` unless the installed libraries are tested
    ones (with ``RTMCALL_ALLOW_UNTESTED_WEBSOCKET=1``: log a warning instead) and have
    every private part :mod:`._ws` uses (always an error)."""
    missing = missing_internals()
    if missing:
        raise UntestedWebSocketLibrary(
            "the installed WebSocket libraries lack what the server relies on ("
            + ", ".join(missing)
            + "): "
            + _install_hint()
        )
    problems = untested_versions()
    if not problems:
        return
    message = "; ".join(problems)
    if os.environ.get(ALLOW_ENV) == "1":
        log.warning("untested WebSocket library (%s=1): %s", ALLOW_ENV, message)
        return
    raise UntestedWebSocketLibrary(
        f"{message}: {_install_hint()}, or set {ALLOW_ENV}=1 to run with it anyway"
    )


def _install_hint() -> str:
    specs = " ".join(f"'{name}>={lo},<={hi}'" for name, (lo, hi) in TESTED.items())
    return f"install a tested version (pip install {specs})"
