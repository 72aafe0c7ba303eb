"""Writing to a plain non-blocking socket from trio without its stream layers.

The hub's connections (:mod:`.resp`, :mod:`.links`) write with one ``send`` in the
scheduler pass that has something to say, and leave what did not fit in a buffer that a
task drains as the socket becomes writable: :func:`drain`.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import trio


async def drain(sock: socket.socket, buf: bytearray, current: Callable[[], bool]) -> None:
    """Send ``buf`` (emptying it) as ``sock`` becomes writable, until it is empty or
    ``current()`` says the socket is no longer the one in use.

    Raises:
      OSError, ValueError, trio.ClosedResourceError: the socket failed or was closed.
    """
    while buf and current():
        await trio.lowlevel.wait_writable(sock)
        if not current():
            return
        try:
            sent = sock.send(buf)
        except BlockingIOError:
            continue
        del buf[:sent]
