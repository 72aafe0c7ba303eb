"""A webhook receiver for the tests: a real HTTP server on a free loopback port (trio +
h11), written from the documented contract only (it does not use rtmcall's own
``verify_signature``): it checks every signature, and by path answers

* ``/ok``: 200;
* ``/flaky``: 500 to the first ``fail_first`` attempts of each event, then 200;
* ``/slow``: waits ``slow_for`` seconds before the first answer to each event (longer
  than the sender's timeout), then 200;
* ``/refuse``: 400 always.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

import h11
import trio


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    status: int

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    secret: bytes
    fail_first: int = 2
    slow_for: float = 30.0
    port: int = 0
    #: Every request, in order of arrival.
    requests: list[Delivery] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)
    _attempts: dict[tuple[str, str], int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def accepted(self, path: str = "/ok") -> list[dict[str, Any]]:
        """The events answered 2xx on ``path`` (each once: the first 2xx per id)."""
        seen: dict[str, dict[str, Any]] = {}
        for d in self.requests:
            if d.path == path and 200 <= d.status < 300 and d.signature_ok:
                seen.setdefault(d.event["id"], d.event)
        return list(seen.values())

    async def wait_for(self, predicate: Any, within: float = 10.0) -> None:
        with trio.fail_after(within):
            while not predicate():
                await self.changed.wait()

    async def run(self, *, task_status: trio.TaskStatus[Receiver] = trio.TASK_STATUS_IGNORED):
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self)
        await trio.serve_listeners(self._handle, listeners)

    def _verify(self, header: str, body: bytes) -> bool:
        try:
            fields = dict(part.split("=", 1) for part in header.split(","))
            stamp = int(fields["t"])
        except (KeyError, ValueError):
            return False
        if abs(time.time() - stamp) > 300:
            return False
        expected = hmac.new(self.secret, f"{stamp}.".encode() + body, hashlib.sha256)
        return hmac.compare_digest(expected.hexdigest(), fields.get("v1", ""))

    async def _handle(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await self._read(conn, stream)
                if request is None:
                    return
                headers = {k.decode().lower(): v.decode() for k, v in request.headers}
                path = request.target.decode()
                ok = self._verify(headers.get("rtmcall-signature", ""), body)
                event_id = headers.get("rtmcall-event-id", "")
                n = self._attempts.get((path, event_id), 0) + 1
                self._attempts[(path, event_id)] = n
                status = 200
                if path == "/flaky" and n <= self.fail_first:
                    status = 500
                elif path == "/refuse":
                    status = 400
                elif path == "/slow" and n == 1:
                    await trio.sleep(self.slow_for)
                if not ok:
                    status = 401
                self.requests.append(Delivery(path, headers, body, ok, status))
                self.changed.set()
                self.changed = trio.Event()
                await stream.send_all(
                    conn.send(h11.Response(status_code=status, headers=[("Content-Length", "0")]))
                    + conn.send(h11.EndOfMessage())
                )
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return
        finally:
            await trio.aclose_forcefully(stream)

    @staticmethod
    async def _read(
        conn: h11.Connection, stream: trio.SocketStream
    ) -> tuple[h11.Request | None, bytes]:
        request = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                if not data:
                    return None, b""
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return request, body
            else:
                return None, b""
