"""Signed webhooks: the server POSTs JSON events to the app's backend.

Events (``type``): ``invitation.sent``, ``invitation.ringing``, ``invitation.ended`` (with
the outcome), ``invitation.missed`` (ended without the callee's accept or refuse),
``callee.offline`` (an Invite found its callee logged out: the moment to send a push),
``user.online`` / ``user.offline`` (a session began / ended on this node), ``call.ended``
(an accepted invitation's call ended: ``call_duration`` in seconds, ``call_end``).

Body: ``{"id", "type", "created_at", "node", "data"}``; ``id`` is unique per event and
stays the same across retries (the idempotency key; also in ``Rtmcall-Event-Id``).

Signature (header ``Rtmcall-Signature: t=<unix seconds>,v1=<hex>``): HMAC-SHA256 with the
webhook secret over ``f"{t}."`` + the raw body. A receiver recomputes it, compares in
constant time and rejects a ``t`` further than its replay window (5 minutes,
:data:`REPLAY_WINDOW`) from its clock; :func:`verify_signature` does all three. Each retry
is signed again with a fresh ``t``.

Delivery: one bounded queue per endpoint (never blocking routing: a full queue drops the
event, counted and logged), a few workers per endpoint, ``httpx.AsyncClient`` on trio.
A 2xx is delivered; a timeout, a connection error, 408, 429 or a 5xx is retried with
exponential backoff and jitter, at most ``attempts`` times in all; another 4xx is given up
at once (the receiver refused it).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import trio

from .observer import InvitationRecord, _iso

log = logging.getLogger("rtmcall.server")

_encoder = msgspec.json.Encoder()

SIGNATURE_HEADER = "Rtmcall-Signature"
EVENT_ID_HEADER = "Rtmcall-Event-Id"
EVENT_TYPE_HEADER = "Rtmcall-Event-Type"
ATTEMPT_HEADER = "Rtmcall-Delivery-Attempt"
#: How far a signature's timestamp may be from the receiver's clock, in seconds.
REPLAY_WINDOW = 300.0

EVENT_TYPES = (
    "invitation.sent",
    "invitation.ringing",
    "invitation.ended",
    "invitation.missed",
    "callee.offline",
    "call.ended",
    "user.online",
    "user.offline",
)


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The ``Rtmcall-Signature`` header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    secret: bytes,
    header: str,
    body: bytes,
    *,
    window: float = REPLAY_WINDOW,
    now: float | None = None,
) -> bool:
    """True when ``header`` is a valid signature of ``body`` made within ``window``."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > window:
        return False
    expected = hmac.new(secret, b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given)


def check_url(url: str) -> str | None:
    """Why ``url`` cannot be a webhook endpoint, or None when it can."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        return f"invalid URL {url!r}: {exc}"
    if parsed.scheme not in ("http", "https"):
        return f"invalid URL {url!r}: the scheme must be http or https"
    if not parsed.host:
        return f"invalid URL {url!r}: no host"
    return None


def _public(url: str) -> str:
    """The endpoint as shown in logs and metrics: no credentials, no query string."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    urls: tuple[str, ...]
    secret: bytes
    #: Events waiting per endpoint; more are dropped (counted, logged).
    queue_size: int = 10_000
    #: Attempts per event, the first included.
    attempts: int = 5
    #: Per attempt: connect + send + answer.
    timeout: float = 5.0
    #: First retry after about this long, doubling, at most ``max_backoff``.
    backoff: float = 0.5
    max_backoff: float = 30.0
    #: Concurrent deliveries per endpoint.
    workers: int = 4


@dataclass(slots=True)
class EndpointStats:
    url: str
    queued: int = 0
    in_flight: int = 0
    delivered: int = 0
    #: Gave up: attempts exhausted, or refused with a 4xx.
    failed: int = 0
    dropped: int = 0
    retries: int = 0
    #: Attempts by result: "2xx", "4xx", "5xx", "timeout", "error".
    attempts: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Event:
    id: str
    type: str
    body: bytes


class _Endpoint:
    def __init__(self, url: str, queue_size: int) -> None:
        self.url = url
        self.stats = EndpointStats(_public(url))
        self.send, self.receive = trio.open_memory_channel[_Event](queue_size)
        #: Events whose delivery was cut short by the server stopping (drained at the stop).
        self.unfinished: list[_Event] = []
        self._last_drop_log = float("-inf")
        self._dropped_since_log = 0

    def put(self, event: _Event) -> None:
        try:
            self.send.send_nowait(event)
        except (trio.WouldBlock, trio.ClosedResourceError):  # (full, or the server stopped)
            self.stats.dropped += 1
            self._dropped_since_log += 1
            now = time.monotonic()
            if now - self._last_drop_log >= 10.0:
                log.warning(
                    "webhook %s: queue full, dropped %d event(s) (%d in all); last: %s %s",
                    self.stats.url,
                    self._dropped_since_log,
                    self.stats.dropped,
                    event.type,
                    event.id,
                )
                self._last_drop_log = now
                self._dropped_since_log = 0
        else:
            self.stats.queued += 1

    @property
    def backlog(self) -> int:
        used = self.send.statistics().current_buffer_used
        return used + self.stats.in_flight + len(self.unfinished)

    def take_all(self) -> list[_Event]:
        """What is left to deliver (cut short first, then queued), taken out."""
        events, self.unfinished = self.unfinished, []
        while True:
            try:
                events.append(self.receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                return events


class WebhookSender:
    """Queues events and delivers them in the background (see the module doc).

    Feed it with :meth:`invitation_event` (an :class:`~.observer.ObserverSink`) and
    :meth:`user_event`; run :meth:`run` in a nursery (``nursery.start``).
    """

    #: Told of every lifecycle event, not only ``ended`` (see ``ObserverSink``).
    every_event = True

    def __init__(
        self,
        config: WebhookConfig,
        node: str,
        *,
        wall: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.node = node
        self._wall = wall
        self._transport = transport
        self.endpoints = [_Endpoint(url, config.queue_size) for url in config.urls]

    # --- feeding (synchronous, never blocks) -------------------------------------------

    def invitation_event(self, kind: str, record: InvitationRecord) -> None:
        data = record.as_dict()
        if kind == "ended":
            self.emit("invitation.ended", data)
            if record.missed:
                self.emit("invitation.missed", data)
        elif kind == "callee_offline":
            self.emit("callee.offline", data)
        elif kind == "call_ended":
            self.emit("call.ended", data)
        else:
            self.emit(f"invitation.{kind}", data)

    def user_event(
        self, online: bool, user: str, session: str, reason: str = "", *, resumed: bool = False
    ) -> None:
        data: dict[str, Any] = {"user": user, "session": session, "node": self.node}
        if not online:
            data["reason"] = reason
        elif resumed:
            data["resumed"] = True  # (handed over from another node: no new login)
        self.emit("user.online" if online else "user.offline", data)

    def emit(self, type_: str, data: dict[str, Any]) -> None:
        event_id = uuid.uuid4().hex
        envelope = {
            "id": event_id,
            "type": type_,
            "created_at": _iso(self._wall()),
            "node": self.node,
            "data": data,
        }
        body = _encoder.encode(envelope)
        event = _Event(event_id, type_, body)
        for endpoint in self.endpoints:
            endpoint.put(event)

    @property
    def backlog(self) -> int:
        return sum(e.backlog for e in self.endpoints)

    # --- delivering -----------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=self.config.workers * len(self.endpoints) + 4)
        return httpx.AsyncClient(
            timeout=self.config.timeout,
            limits=limits,
            transport=self._transport,
            headers={"User-Agent": "rtmcall-webhooks"},
            follow_redirects=False,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver until cancelled. What is still queued or in flight then stays for
        :meth:`drain`."""
        async with self._client() as client:
            async with trio.open_nursery() as nursery:
                for endpoint in self.endpoints:
                    for _ in range(self.config.workers):
                        nursery.start_soon(self._worker, client, endpoint)
                task_status.started()

    async def drain(self, grace: float) -> None:
        """The server stops: deliver what is left (the events of the stop itself among
        it: sessions closed, calls ended) for at most ``grace`` seconds, then log what
        was not. Call it after :meth:`run` ended, shielded."""
        batches = [(endpoint, endpoint.take_all()) for endpoint in self.endpoints]
        if any(events for _, events in batches):
            async with self._client() as client:
                with trio.move_on_after(grace):
                    async with trio.open_nursery() as nursery:
                        for endpoint, events in batches:
                            send, receive = trio.open_memory_channel[_Event](len(events))
                            for event in events:
                                send.send_nowait(event)
                            send.close()
                            # (both ends: an event emitted from now on is counted dropped)
                            endpoint.send, endpoint.receive = send, receive
                            for _ in range(self.config.workers):
                                nursery.start_soon(self._worker, client, endpoint)
        left = sum(len(endpoint.take_all()) for endpoint in self.endpoints)
        if left:
            log.warning("webhooks: %d event(s) not delivered at shutdown", left)

    async def _worker(self, client: httpx.AsyncClient, endpoint: _Endpoint) -> None:
        async for event in endpoint.receive:
            endpoint.stats.in_flight += 1
            done = False  # (delivered or given up)
            try:
                await self._deliver(client, endpoint, event)
                done = True
            finally:
                endpoint.stats.in_flight -= 1
                if not done:  # (cut short: the server stops)
                    endpoint.unfinished.append(event)

    async def _deliver(self, client: httpx.AsyncClient, endpoint: _Endpoint, event: _Event) -> None:
        stats = endpoint.stats
        config = self.config
        why = ""
        for attempt in range(1, config.attempts + 1):
            if attempt > 1:
                stats.retries += 1
                delay = min(config.backoff * 2 ** (attempt - 2), config.max_backoff)
                await trio.sleep(delay * random.uniform(0.8, 1.2))
            timestamp = int(self._wall())
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(config.secret, event.body, timestamp),
                EVENT_ID_HEADER: event.id,
                EVENT_TYPE_HEADER: event.type,
                ATTEMPT_HEADER: str(attempt),
            }
            try:
                with trio.fail_after(config.timeout):
                    answer = await client.post(endpoint.url, content=event.body, headers=headers)
            except (trio.TooSlowError, httpx.TimeoutException):
                result, why = "timeout", "timed out"
            except httpx.HTTPError as exc:
                result, why = "error", f"{type(exc).__name__}: {exc}"
            else:
                status = answer.status_code
                result = f"{status // 100}xx"
                why = f"HTTP {status}"
                if 200 <= status < 300:
                    _count(stats.attempts, result)
                    stats.delivered += 1
                    return
                if 400 <= status < 500 and status not in (408, 429):
                    _count(stats.attempts, result)
                    stats.failed += 1
                    log.warning(
                        "webhook %s: %s %s refused (%s), not retried",
                        stats.url,
                        event.type,
                        event.id,
                        why,
                    )
                    return
            _count(stats.attempts, result)
        stats.failed += 1
        log.warning(
            "webhook %s: gave up on %s %s after %d attempts (last: %s)",
            stats.url,
            event.type,
            event.id,
            config.attempts,
            why,
        )


def _count(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1
