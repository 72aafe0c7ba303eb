"""``run_bench``: log in pairs with the real SDK, place invitations, measure.

Every pair is one caller and one callee, each a full :class:`~rtmcall.client.RtmClient`.
A caller keeps one invitation in flight (closed loop), or paces its calls so that all
pairs together offer ``rate`` invitations/s; its callee accepts, refuses, or lets the
caller cancel once the ACK came. Latencies are taken at the caller with
``time.perf_counter`` from just before ``call()`` to the events.

The run, in phases: log everyone in (64 logins in flight) → warm-up → measured window
(duration, or a call budget) → drain (callers finish their last call; wait until every
callee saw its own ending) → log out. Everything is bounded by ``options.timeout``.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import trio

from rtmcall.client import ClientConfig, ConnectionStateChanged, RtmClient, RtmError, connect
from rtmcall.engine.codes import ConnectionState
from rtmcall.engine.events import ApiCallError, InvitationEvent

from .embedded import embedded_server
from .idle import LOGIN_CONCURRENCY, hold_lean_idle
from .options import BenchOptions
from .result import EXPECTED_OUTCOME, BenchResult, LatencyStats
from .tally import Tally

#: Windows far beyond any latency a loaded machine shows, so that load alone never turns
#: into a protocol failure; a call that still has no outcome after CALL_TIMEOUT is an error.
BENCH_CLIENT_CONFIG = ClientConfig(
    no_response_timeout=60.0,
    lifetime=300.0,
    confirm_timeout=60.0,
    heartbeat_timeout=60.0,
    request_timeout=60.0,
    connect_timeout=30.0,
    event_buffer=1_000_000,
    # The bench measures the invitation handshake and never hangs up: no calls (SPEC §6)
    # piling up in its clients.
    calls=False,
)
CALL_TIMEOUT = 90.0
#: After the window: how long callees get to see the end of the last calls.
DRAIN_TIMEOUT = 15.0

Events = trio.MemoryReceiveChannel[Any]
Body = Callable[[RtmClient, Events | None], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class BenchSnapshot:
    """What the progress callback gets, about 4 times a second."""

    phase: str  # login, warmup, measure, drain, done
    users: int
    logged_in: int
    #: Seconds into the measured window, and its length (duration mode) or None.
    elapsed: float
    duration: float | None
    #: Measured calls done, and the budget (calls mode) or None.
    handshakes: int
    calls: int | None
    errors: int
    unexpected: int

    @property
    def rate(self) -> float:
        return self.handshakes / self.elapsed if self.elapsed > 0 else 0.0


def _describe(event: InvitationEvent) -> str:
    error = getattr(event, "error", None)
    return f"{event.name}({error.name})" if error is not None else event.name


def _client_event(event: Any, tally: Tally) -> None:
    if isinstance(event, ConnectionStateChanged) and event.state is not ConnectionState.CONNECTED:
        tally.error(f"connection {event.state.name} ({event.reason.name})")


async def _caller(
    client: RtmClient,
    events: Events,
    callee: str,
    options: BenchOptions,
    tally: Tally,
    go: trio.Event,
    stop: trio.Event,
) -> None:
    await go.wait()
    expected = EXPECTED_OUTCOME[options.mode][0]
    cancel = options.mode == "cancel"
    interval = options.pairs / options.rate if options.rate else None
    next_at = trio.current_time() + random.random() * interval if interval else 0.0
    while True:
        if interval is not None:
            # Wait for the next slot, unless the run ends first (a slow pace must not
            # hold the run open for a whole interval).
            with trio.move_on_at(next_at):
                await stop.wait()
            # Paced, not bursty: a caller that fell behind does not catch up in a burst.
            next_at = max(next_at + interval, trio.current_time())
        may, measured = tally.take_call()
        if not may:
            stop.set()
            return
        t0 = time.perf_counter()
        try:
            inv = await client.call(callee, content=options.content)
        except ApiCallError as exc:
            tally.error(f"call: {exc.code.name}")
            await trio.sleep(0.01)
            continue
        tally.placed += 1
        received: float | None = None
        final: InvitationEvent | None = None
        with trio.move_on_after(CALL_TIMEOUT):
            async for event in events:
                if not isinstance(event, InvitationEvent):
                    _client_event(event, tally)
                    continue
                if event.invitation.id != inv.id:
                    tally.error("event for another invitation")
                    continue
                if event.name == "LocalInvitationReceivedByPeer":
                    received = time.perf_counter() - t0
                    if cancel:
                        try:
                            await client.cancel(inv)
                        except ApiCallError as exc:
                            tally.error(f"cancel: {exc.code.name}")
                elif inv.terminal:
                    final = event
                    break
        if final is None:
            tally.error("call without outcome within 90 s")
            return
        ok = final.name == expected
        if not ok:
            tally.unexpected[_describe(final)] += 1
        tally.call_ended(measured, ok, received, time.perf_counter() - t0)


async def _callee(client: RtmClient, events: Events, options: BenchOptions, tally: Tally) -> None:
    expected = EXPECTED_OUTCOME[options.mode][1]
    mode = options.mode
    async for event in events:
        if not isinstance(event, InvitationEvent):
            _client_event(event, tally)
            continue
        name = event.name
        if name == "RemoteInvitationReceived":
            try:
                if mode == "accept":
                    await client.accept(event.invitation.id, "ok")
                elif mode == "refuse":
                    await client.refuse(event.invitation.id, "busy")
            except ApiCallError as exc:
                tally.error(f"{mode}: {exc.code.name}")
        else:
            # Every other callee event is an ending; the caller counts its own side.
            if name != expected:
                tally.unexpected[f"callee {_describe(event)}"] += 1
            tally.callee_done += 1


async def _session(
    url: str,
    user: str,
    limiter: trio.CapacityLimiter,
    tally: Tally,
    ready: Callable[[], None],
    body: Body | None,
    scopes: list[trio.CancelScope],
) -> None:
    """Log ``user`` in, run ``body`` (None: stay idle) until it returns or is cancelled
    through ``scopes``, then log out."""
    logged_in = False
    try:
        async with AsyncExitStack() as stack:
            async with limiter:
                client = await stack.enter_async_context(
                    connect(url, user, config=BENCH_CLIENT_CONFIG)
                )
            events = client.events() if body is not None else None
            if events is not None:
                stack.callback(events.close)
            logged_in = True
            tally.logged_in += 1
            ready()
            with trio.CancelScope() as scope:
                scopes.append(scope)
                if body is None:
                    await trio.sleep_forever()
                else:
                    await body(client, events)
    except RtmError as exc:
        reason = getattr(exc, "reason", None)
        detail = reason.name if reason is not None else getattr(exc, "message", str(exc))
        tally.error(f"{type(exc).__name__}: {detail}"[:160])
        if not logged_in:
            tally.login_failed += 1
            ready()


def _cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        import psutil
    except ImportError:
        return None
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system


def _rss(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except (ImportError, Exception):
        return None


async def run_bench(
    options: BenchOptions, *, progress: Callable[[BenchSnapshot], None] | None = None
) -> BenchResult:
    """Run one bench (see the module docstring) and return what it measured.

    Args:
      options: what to run; ``options.server`` None starts a server subprocess.
      progress: called about 4 times a second with a :class:`BenchSnapshot`, and once at
        the end (phase ``done``).

    Raises:
      ValueError: the options are inconsistent (``options.problem()``).
      RuntimeError: the embedded server did not start.

    Errors while running (refused logins, dropped connections, calls without an outcome)
    do not raise: they are counted in ``BenchResult.errors``.
    """
    problem = options.problem()
    if problem is not None:
        raise ValueError(problem)
    if options.server is None:
        async with embedded_server() as proc:
            return await _run(options, proc.url, proc.pid, True, progress)
    return await _run(options, options.server, options.server_pid, False, progress)


async def _run(
    options: BenchOptions,
    url: str,
    pid: int | None,
    embedded: bool,
    progress: Callable[[BenchSnapshot], None] | None,
) -> BenchResult:
    tally = Tally(budget=options.calls)
    run = f"{options.prefix}{secrets.token_hex(3)}"
    sdk_idle = options.idle if options.idle_sdk else 0
    users = 2 * options.pairs + sdk_idle
    phase = "login"
    all_ready = trio.Event()
    callers_done = trio.Event()
    go = trio.Event()
    stop = trio.Event()
    active_callers = options.pairs
    scopes: list[trio.CancelScope] = []
    limiter = trio.CapacityLimiter(LOGIN_CONCURRENCY)

    def ready() -> None:
        if tally.logged_in + tally.login_failed >= users:
            all_ready.set()

    def caller_body(callee: str) -> Body:
        async def body(client: RtmClient, events: Events | None) -> None:
            nonlocal active_callers
            assert events is not None
            try:
                await _caller(client, events, callee, options, tally, go, stop)
            finally:
                active_callers -= 1
                if active_callers == 0:
                    callers_done.set()

        return body

    async def callee_body(client: RtmClient, events: Events | None) -> None:
        assert events is not None
        await _callee(client, events, options, tally)

    def snapshot() -> BenchSnapshot:
        start = tally.window_start
        return BenchSnapshot(
            phase=phase,
            users=users + (options.idle - sdk_idle),
            logged_in=tally.logged_in,
            elapsed=0.0 if start is None else time.perf_counter() - start,
            duration=None if options.calls is not None else options.duration,
            handshakes=tally.handshakes,
            calls=options.calls,
            errors=sum(tally.errors.values()),
            unexpected=sum(tally.unexpected.values()),
        )

    async def report() -> None:
        assert progress is not None
        while True:
            progress(snapshot())
            await trio.sleep(0.25)

    t_login = time.perf_counter()
    login_s = 0.0
    cpu0 = cpu1 = None
    bound = options.timeout + options.warmup + (options.duration if options.calls is None else 0)
    with trio.move_on_after(bound) as overall:
        async with trio.open_nursery() as nursery:
            if progress is not None:
                nursery.start_soon(report)
            if options.idle and not options.idle_sdk:
                ok, failed = await nursery.start(hold_lean_idle, url, options.idle, f"{run}-i")
                tally.logged_in += ok
                if failed:
                    tally.errors["idle login failed"] = failed
            async with trio.open_nursery() as sessions:
                for i in range(options.pairs):
                    caller, callee = f"{run}-c{i}", f"{run}-e{i}"
                    for user, body in ((callee, callee_body), (caller, caller_body(callee))):
                        args = (url, user, limiter, tally, ready, body, scopes)
                        sessions.start_soon(_session, *args)
                for i in range(sdk_idle):
                    user = f"{run}-i{i}"
                    sessions.start_soon(_session, url, user, limiter, tally, ready, None, scopes)
                await all_ready.wait()
                login_s = time.perf_counter() - t_login
                if tally.login_failed:
                    tally.running = False
                    callers_done.set()
                go.set()
                if options.warmup:
                    phase = "warmup"
                    await trio.sleep(options.warmup)
                phase = "measure"
                cpu0 = _cpu_seconds(pid)
                tally.window_start = time.perf_counter()
                if options.calls is None:
                    with trio.move_on_after(options.duration):
                        await callers_done.wait()
                    tally.close_window()
                    cpu1 = _cpu_seconds(pid)
                    stop.set()
                await callers_done.wait()
                phase = "drain"
                # Polling a counter that hundreds of tasks bump is simpler than an Event
                # each of them would have to check; it runs once, for milliseconds.
                with trio.move_on_after(DRAIN_TIMEOUT):
                    while tally.callee_done < tally.placed:  # noqa: ASYNC110
                        await trio.sleep(0.01)
                if cpu1 is None:
                    cpu1 = _cpu_seconds(pid)
                missing = tally.placed - tally.callee_done
                if missing > 0:
                    tally.errors["callee saw no ending"] = missing
                # Sessions leave their bodies and log out (bounded: connect's logout is).
                for scope in scopes:
                    scope.cancel()
                sessions.cancel_scope.deadline = trio.current_time() + 10.0
            nursery.cancel_scope.cancel()
    if overall.cancelled_caught:
        tally.error(f"run did not finish within {bound:g} s")
    phase = "done"
    if progress is not None:
        progress(snapshot())
    return _result(options, url, embedded, tally, login_s, cpu0, cpu1, pid)


def _result(
    options: BenchOptions,
    url: str,
    embedded: bool,
    tally: Tally,
    login_s: float,
    cpu0: float | None,
    cpu1: float | None,
    pid: int | None,
) -> BenchResult:
    elapsed = tally.elapsed
    cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    return BenchResult(
        server=url,
        embedded=embedded,
        pairs=options.pairs,
        mode=options.mode,
        idle=options.idle,
        rate=options.rate,
        elapsed=elapsed,
        handshakes=tally.handshakes,
        handshakes_per_s=tally.handshakes / elapsed if elapsed > 0 else 0.0,
        received_by_peer=LatencyStats.of(tally.received),
        outcome=LatencyStats.of(tally.outcome),
        errors=dict(tally.errors),
        unexpected=dict(tally.unexpected),
        login_s=login_s,
        server_cpu_s=cpu,
        server_cpu_us_per_handshake=(
            cpu / tally.handshakes * 1e6 if cpu is not None and tally.handshakes else None
        ),
        server_rss=_rss(pid),
    )
