"""Playing one scenario: an embedded server (or the ``--server`` URLs), one fault proxy and one
real SDK client per actor, the steps in order, then the end-of-scenario checks.

The runner is a plain trio object. It reports to an :class:`Observer` as it goes (the live
view, ``--json`` lines) and returns a :class:`ScenarioResult`; it never prints.

End-of-scenario checks (SPEC §5): the runner waits until every invitation is terminal on
every live actor (bounded by the protocol's windows and the scenario's ``timeout``), then
fails the scenario for an invitation that never ended, for two ends that disagree (SPEC §2
agreement), for an ``ApiCallError``, ``Error`` or ``LoginFailure`` event that no ``expect``
took, and for a named invitation whose outcome is not one of its ``outcomes``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol
from urllib.parse import urlsplit

import trio

from rtmcall.cli import commands as c
from rtmcall.cli.demo.view import pair
from rtmcall.client import ClientConfig
from rtmcall.client.errors import RtmError
from rtmcall.engine.codes import (
    LOCAL_TERMINAL,
    REMOTE_TERMINAL,
    LocalInvitationState,
    RemoteInvitationState,
)
from rtmcall.engine.events import InvitationInfo

from .actor import ActorRun, Recorded
from .load import substitute
from .match import brief, matches, outcome_matches
from .model import ActorStep, ParallelStep, Scenario, ServerStep, SleepStep, Step, step_text
from .proxy import FaultProxy

log = logging.getLogger("rtmcall.scenario")

#: Events that fail a scenario unless an ``expect`` took them.
UNEXPECTED = ("ApiCallError", "Error", "LoginFailure")
#: How many of an actor's last events a failure message shows.
LAST_EVENTS = 5

_KIND = {
    LocalInvitationState.ACCEPTED_BY_REMOTE: "accepted",
    LocalInvitationState.REFUSED_BY_REMOTE: "refused",
    LocalInvitationState.CANCELED: "canceled",
    LocalInvitationState.FAILURE: "failure",
}
_REMOTE_KIND = {
    RemoteInvitationState.ACCEPTED: "accepted",
    RemoteInvitationState.REFUSED: "refused",
    RemoteInvitationState.CANCELED: "canceled",
    RemoteInvitationState.FAILURE: "failure",
}


class StepFailed(Exception):
    """A step did not hold; the message says what was expected and what happened."""


def terminal(info: InvitationInfo) -> bool:
    return info.state in (LOCAL_TERMINAL if info.direction == "out" else REMOTE_TERMINAL)


def _kind(info: InvitationInfo) -> str | None:
    if info.direction == "out":
        return _KIND.get(LocalInvitationState(info.state))
    return _REMOTE_KIND.get(RemoteInvitationState(info.state))


def _innermost_first(number: str) -> tuple[int, list[int]]:
    """Sorts step numbers "3.2", "3.10", "3": the steps of a block, in order, then it."""
    return -number.count("."), [int(n) for n in number.split(".")]


@dataclass
class StepResult:
    #: "3", or "3.2" for the second step of the parallel block that is step 3.
    number: str
    text: str
    ok: bool
    started: float
    elapsed: float
    message: str = ""


@dataclass
class ScenarioResult:
    scenario: Scenario
    #: The repeat index (1-based) and how many repeats there are.
    run: int = 1
    runs: int = 1
    ok: bool = False
    duration: float = 0.0
    steps: list[StepResult] = field(default_factory=list)
    #: Why it failed: "step 4 (bob: expect …): none within 2 s; bob's last events: …".
    failure: str | None = None
    #: The step number the failure is about: the step that failed, or the one the timeout
    #: or Ctrl-C cut off (None: the end checks, the set-up, or a timeout or Ctrl-C then).
    failed_step: str | None = None
    interrupted: bool = False
    events: dict[str, list[Recorded]] = field(default_factory=dict)
    #: Every named invitation's outcome, "CALLER / CALLEE" (see rtmcall.cli.demo.view.pair).
    outcomes: dict[str, str] = field(default_factory=dict)
    run_id: str = ""
    #: Seconds from the start until the end-of-scenario checks were done (before logouts).
    checked_at: float = 0.0
    #: What went otherwise than asked without failing the run (a ``--server`` that did not
    #: answer at the set-up: its actors started on the next one that did).
    warnings: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.scenario.name + (f" [{self.run}/{self.runs}]" if self.runs > 1 else "")


class Observer(Protocol):
    def step_started(self, run: ScenarioRun, number: str, text: str) -> None: ...

    def step_ended(self, run: ScenarioRun, result: StepResult) -> None: ...

    def changed(self, run: ScenarioRun) -> None: ...


class QuietObserver:
    """An observer that wants nothing (the default); subclass it to hear of some things."""

    def step_started(self, run: ScenarioRun, number: str, text: str) -> None:
        pass

    def step_ended(self, run: ScenarioRun, result: StepResult) -> None:
        pass

    def changed(self, run: ScenarioRun) -> None:
        pass


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"{url!r} is not a ws:// URL")
    return parts.hostname, parts.port or (443 if parts.scheme == "wss" else 80)


class EmbeddedServer:
    """The in-process server of a run, which ``server: stop|start|restart`` steps control."""

    def __init__(self, nursery: trio.Nursery, on_moved: Callable[[tuple[str, int]], None]):
        self._nursery = nursery
        self._on_moved = on_moved
        self._scope: trio.CancelScope | None = None
        self._done = trio.Event()
        self.address: tuple[str, int] = ("127.0.0.1", 0)

    @property
    def running(self) -> bool:
        return self._scope is not None

    async def start(self) -> None:
        if self._scope is not None:
            raise StepFailed("the server is running already")
        from rtmcall.server import ServerConfig, serve

        host, port = self.address
        self._scope = trio.CancelScope()
        self._done = trio.Event()
        try:
            server = await self._nursery.start(self._serve, serve, ServerConfig(), port)
        except OSError:  # the old port was taken meanwhile: a new one, the proxies follow
            server = await self._nursery.start(self._serve, serve, ServerConfig(), 0)
        moved = server.port != port
        self.address = (host, server.port)
        if moved:
            self._on_moved(self.address)

    async def _serve(
        self, serve: Any, config: Any, port: int, *, task_status: trio.TaskStatus[Any]
    ) -> None:
        assert self._scope is not None
        try:
            with self._scope:
                await serve("127.0.0.1", port, config=config, task_status=task_status)
        finally:
            self._done.set()

    async def stop(self) -> None:
        if self._scope is None:
            raise StepFailed("the server is stopped already")
        self._scope.cancel()
        await self._done.wait()
        self._scope = None


class ScenarioRun:
    """One play of a scenario.

    Args:
      scenario: as loaded (its ``vars`` already include ``--var``).
      servers: the ``--server`` URLs; None: an embedded server.
      run, runs: the repeat index (1-based) and count.
      scale: every duration of the scenario (windows, waits, deadlines) is multiplied by it
        (``rtmcall demo --speed 2`` plays at 0.5).
      observer: told about steps as they start and end, and about every change.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        servers: Sequence[str] | None = None,
        run: int = 1,
        runs: int = 1,
        scale: float = 1.0,
        observer: Observer | None = None,
    ) -> None:
        self.scenario = scenario
        self.servers = list(servers) if servers else None
        self.scale = scale
        self.observer: Observer = observer or QuietObserver()
        self.run_id = secrets.token_hex(3)
        self.vars = {**scenario.vars, "run": self.run_id, "i": str(run)}
        self.result = ScenarioResult(scenario, run, runs, run_id=self.run_id)
        self.actors: dict[str, ActorRun] = {}
        self.users = {name: a.user for name, a in scenario.actors.items()}
        #: invitation name -> id, and back.
        self.ids: dict[str, str] = {}
        self.names: dict[str, str] = {}
        #: Steps now running (for "where it stood" when the scenario is cut).
        self.current: list[str] = []
        #: The same steps: number -> (text, start), to report them if they are cut off.
        self._running: dict[str, tuple[str, float]] = {}
        self.server: EmbeddedServer | None = None
        #: The ``--server`` addresses (none with the embedded server).
        self._addresses: list[tuple[str, int]] = []
        self._stop = trio.CancelScope()
        self._changed = trio.Event()
        self._t0 = 0.0

    # --- the whole run ------------------------------------------------------------------

    def interrupt(self) -> None:
        """Ctrl-C: stop where it stands; the result is marked interrupted."""
        self.result.interrupted = True
        self._stop.cancel()

    def elapsed(self) -> float:
        return trio.current_time() - self._t0

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()
        self.observer.changed(self)

    async def play(self) -> ScenarioResult:
        cfg = self.scenario.config
        config = ClientConfig(
            no_response_timeout=cfg.no_response_timeout * self.scale,
            lifetime=cfg.lifetime * self.scale,
            confirm_timeout=cfg.confirm_timeout * self.scale,
            expire_grace=min(2.0, cfg.confirm_timeout) * self.scale,
        )
        self._t0 = trio.current_time()
        result = self.result
        async with trio.open_nursery() as nursery:
            proxies = await self._proxies(nursery)
            for i, (name, spec) in enumerate(self.scenario.actors.items()):
                actor_config = replace(config, auto_ack=spec.ack)
                actor = ActorRun(spec, actor_config, proxies[i], nursery, self._t0)
                actor.on_change = self._notify
                self.actors[name] = actor
            timeout = self.scenario.timeout * self.scale
            with self._stop:
                with trio.move_on_after(timeout) as budget:
                    try:
                        await self._play_steps()
                    except StepFailed as exc:
                        result.failure = str(exc)
            if result.interrupted:
                result.failure = f"interrupted (Ctrl-C) {self._standing()}"
                self._cut_off("interrupted (Ctrl-C)")
            elif budget.cancelled_caught:
                why = f"the scenario's timeout ({self.scenario.timeout:g} s) ran out"
                result.failure = f"{why} {self._standing()}"
                self._cut_off(why)
            result.events = {name: a.events for name, a in self.actors.items()}
            result.outcomes = self._outcomes()
            with trio.move_on_after(5):
                async with trio.open_nursery() as stopping:
                    for actor in self.actors.values():
                        stopping.start_soon(actor.stop)
            # Let the last connections close through the proxies, so that the server's
            # shutdown has nobody left to wait for.
            with trio.move_on_after(1):
                for actor in self.actors.values():
                    await actor.proxy.wait_idle()
            if self.server is not None and self.server.running:
                with trio.move_on_after(3):
                    await self.server.stop()
            nursery.cancel_scope.cancel()
        result.ok = result.failure is None
        result.duration = trio.current_time() - self._t0
        return result

    def _standing(self) -> str:
        if self.current:
            return "at step " + ", ".join(self.current)
        return "while waiting for every invitation to end"

    def _cut_off(self, why: str) -> None:
        """The steps the timeout or Ctrl-C cut off end as failed steps, as a step that
        fails does (the steps of a parallel block before the block); the first of them is
        the failed step."""
        now = self.elapsed()
        cut = sorted(self._running.items(), key=lambda item: _innermost_first(item[0]))
        self._running.clear()
        for number, (text, t0) in cut:
            self._ended(StepResult(number, text, False, t0, now - t0, f"cut off: {why}"))
            if self.result.failed_step is None:
                self.result.failed_step = number

    async def _proxies(self, nursery: trio.Nursery) -> list[FaultProxy]:
        specs = list(self.scenario.actors.values())
        if self.servers is None:
            self.server = EmbeddedServer(nursery, self._server_moved)
            await self.server.start()
            upstreams = [self.server.address] * len(specs)
        else:
            addresses = self._addresses = [_host_port(url) for url in self.servers]
            upstreams = [
                addresses[spec.server if spec.server is not None else i % len(addresses)]
                for i, spec in enumerate(specs)
            ]
        proxies = []
        for upstream in upstreams:
            # (An actor whose server refuses connections fails over to the next one, as
            # behind a load balancer.)
            proxy = FaultProxy(upstream, fallbacks=self._addresses)
            proxies.append(await nursery.start(proxy.run))
        return proxies

    def _server_moved(self, address: tuple[str, int]) -> None:
        for actor in self.actors.values():
            actor.proxy.upstream = address

    async def _reach_servers(self) -> None:
        """With ``--server``: when none answers on TCP, the run stops at once with the
        URLs (not the fault proxy's) and why, and so it does when an actor placed on one
        by its ``server:`` key finds it down. One that does not answer while others do (a
        node that was killed) is a warning: the actors spread onto it start on the first
        other server that answers, in the order given, as behind a load balancer."""
        servers = self.servers or []
        if not servers:
            return  # (the embedded server)
        down: dict[int, str] = {}

        async def reach(index: int, url: str) -> None:
            try:
                with trio.fail_after(3):
                    stream = await trio.open_tcp_stream(*_host_port(url))
            except (OSError, trio.TooSlowError) as exc:
                down[index] = (
                    "no answer within 3 s" if isinstance(exc, trio.TooSlowError) else str(exc)
                )
                return
            await trio.aclose_forcefully(stream)

        async with trio.open_nursery() as nursery:
            for index, url in enumerate(servers):
                nursery.start_soon(reach, index, url)
        said = {i: f"{servers[i]}: {why}" for i, why in sorted(down.items())}
        if len(down) == len(servers):
            raise StepFailed(
                f"set-up: cannot reach the server {'; nor '.join(said.values())} (is"
                " `rtmcall server` running there?)"
            )
        moved: dict[int, list[str]] = {i: [] for i in down}
        for i, (name, spec) in enumerate(self.scenario.actors.items()):
            index = spec.server if spec.server is not None else i % len(servers)
            if index not in down:
                continue
            if spec.server is not None:
                raise StepFailed(
                    f"set-up: {name}'s server ({{server: {index}}}) does not answer: {said[index]}"
                )
            moved[index].append(name)
        for index, names in moved.items():
            where = (
                f"its actors ({', '.join(names)}) start on the first other server that answers"
                if names
                else "no actor was on it"
            )
            self.result.warnings.append(f"set-up: cannot reach the server {said[index]}; {where}")

    async def _play_steps(self) -> None:
        await self._reach_servers()
        first = [a for a in self.actors.values() if a.spec.login]
        async with trio.open_nursery() as logins:
            for actor in first:
                logins.start_soon(partial(actor.login, patient=True))
        refused = [a for a in first if not a.logged_in]
        if refused:
            a = refused[0]
            raise StepFailed(
                f"set-up: {a.name} could not log in as {a.user!r}; "
                f"{a.name}'s last events: {self._last_events(a)}"
            )
        for i, step in enumerate(self.scenario.steps):
            await self._step(step, str(i + 1))
        await self._settle()
        self.result.checked_at = self.elapsed()
        self._end_checks()

    # --- steps --------------------------------------------------------------------------

    async def _step(self, step: Step, number: str) -> None:
        text = self._display(step)
        label = f"{number} ({text})"
        self.observer.step_started(self, number, text)
        # Left in place when the run is cancelled (timeout, Ctrl-C): where it stood.
        self.current.append(label)
        t0 = self.elapsed()
        self._running[number] = (text, t0)
        try:
            match step:
                case ActorStep():
                    await self._actor_step(step, number)
                case SleepStep(seconds=seconds):
                    await trio.sleep(seconds * self.scale)
                case ServerStep(action=action):
                    await self._server_step(action)
                case ParallelStep(steps=steps):
                    await self._parallel(steps, number)
        except StepFailed as exc:
            self.current.remove(label)
            del self._running[number]
            self._ended(StepResult(number, text, False, t0, self.elapsed() - t0, str(exc)))
            if isinstance(step, ParallelStep):
                raise
            if self.result.failed_step is None:
                self.result.failed_step = number
            raise StepFailed(f"step {label}: {exc}") from None
        self.current.remove(label)
        del self._running[number]
        self._ended(StepResult(number, text, True, t0, self.elapsed() - t0))

    def _ended(self, result: StepResult) -> None:
        self.result.steps.append(result)
        self.observer.step_ended(self, result)

    def _display(self, step: Step) -> str:
        if isinstance(step, ActorStep):
            return f"{step.actor}: {substitute(step.line, self.vars)}"
        return step_text(step)

    async def _parallel(self, steps: Sequence[Step], number: str) -> None:
        failures: list[StepFailed] = []

        async def one(step: Step, sub: str, nursery: trio.Nursery) -> None:
            try:
                await self._step(step, sub)
            except StepFailed as exc:
                failures.append(exc)
                nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            for j, step in enumerate(steps):
                nursery.start_soon(one, step, f"{number}.{j + 1}", nursery)
        if failures:
            raise failures[0]

    async def _server_step(self, action: str) -> None:
        assert self.server is not None  # checked at load: no server steps with --server
        if action in ("stop", "restart"):
            await self.server.stop()
        if action in ("start", "restart"):
            await self.server.start()

    async def _actor_step(self, step: ActorStep, number: str) -> None:
        actor = self.actors[step.actor]
        line = substitute(step.line, self.vars)
        try:
            cmd = c.parse(line, scenario=True)
        except c.CommandError as exc:  # a --var made the line invalid
            raise StepFailed(str(exc)) from None
        if cmd is None:
            return
        match cmd:
            case c.Expect(absent=False):
                await self._expect(actor, cmd, number)
            case c.Expect(absent=True):
                await self._expect_no(actor, cmd)
            case c.Login():
                try:
                    await actor.login()
                except RtmError as exc:
                    raise StepFailed(str(exc)) from None
            case c.Logout():
                await actor.logout()
            case c.Kill():
                actor.kill()
            case c.Net():
                self._net(actor, cmd)
            case c.Call():
                await self._call(actor, cmd)
            case _:
                await self._phone(actor).execute(self._resolve(cmd))

    def _phone(self, actor: ActorRun):  # type: ignore[no-untyped-def]
        if actor.killed:
            raise StepFailed(f"{actor.name} was killed; it takes no more commands")
        if actor.phone is None:
            raise StepFailed(f"{actor.name} has not logged in (add a `{actor.name}: login` step)")
        return actor.phone

    def _id(self, name: str | None) -> str | None:
        if name is None:
            return None
        if name not in self.ids:
            raise StepFailed(
                f"invitation {name!r} was not made: its `call … --as {name}` step has not run "
                "or its call was refused"
            )
        return self.ids[name]

    def _resolve(self, cmd: c.Command) -> c.Command:
        """Actor names → user ids, invitation names → ids, durations scaled."""
        if self.scale != 1.0:
            if isinstance(cmd, c.Sleep):
                cmd = replace(cmd, seconds=cmd.seconds * self.scale)
            elif isinstance(cmd, c.Wait) and cmd.timeout is not None:
                cmd = replace(cmd, timeout=cmd.timeout * self.scale)
        if isinstance(cmd, c.Online):
            return replace(cmd, peers=tuple(self.users.get(p, p) for p in cmd.peers))
        ref = getattr(cmd, "id", None)
        if isinstance(ref, str):
            return replace(cmd, id=self._id(ref))  # type: ignore[type-var]
        return cmd

    async def _call(self, actor: ActorRun, cmd: c.Call) -> None:
        phone = self._phone(actor)
        peers = tuple(self.users.get(p, p) for p in cmd.peers)
        lifetime = None if cmd.lifetime is None else cmd.lifetime * self.scale
        before = len(actor.events)
        await phone.execute(replace(cmd, peers=peers, name=None, lifetime=lifetime))
        if cmd.name is None:
            return
        for rec in actor.events[before:]:
            if rec.obj.get("event") == "LocalInvitationSent" and rec.obj.get("callee") == peers[0]:
                self.ids[cmd.name] = rec.obj["id"]
                self.names[rec.obj["id"]] = cmd.name
                self._notify()
                return

    def _net(self, actor: ActorRun, cmd: c.Net) -> None:
        proxy = actor.proxy
        if cmd.action == "down":
            proxy.down(None if cmd.seconds is None else cmd.seconds * self.scale)
        elif cmd.action == "up":
            proxy.up()
        elif cmd.action == "delay":
            proxy.delay((cmd.seconds or 0.0) * self.scale)
        elif cmd.action == "cut":
            if cmd.to is not None and self._addresses:
                proxy.upstream = self._addresses[cmd.to]
            proxy.cut()
        self._notify()

    # --- expectations -------------------------------------------------------------------

    def _find(self, actor: ActorRun, cmd: c.Expect, inv_id: str | None) -> Recorded | None:
        for rec in actor.events:
            if rec.taken_by is None and matches(rec.obj, cmd.event, inv_id, cmd.match, self.users):
                return rec
        return None

    def _pending_id(self, cmd: c.Expect) -> tuple[bool, str | None]:
        """(known yet, id): an expect about a name whose call has not happened yet (in a
        parallel block) waits for it rather than failing at once."""
        if cmd.name is None:
            return True, None
        if cmd.name in self.ids:
            return True, self.ids[cmd.name]
        return False, None

    async def _expect(self, actor: ActorRun, cmd: c.Expect, number: str) -> None:
        within = cmd.within * self.scale
        with trio.move_on_after(within):
            while True:
                known, inv_id = self._pending_id(cmd)
                if known:
                    rec = self._find(actor, cmd, inv_id)
                    if rec is not None:
                        rec.taken_by = number
                        return
                await self._changed.wait()
        known, _ = self._pending_id(cmd)
        if not known:
            self._id(cmd.name)  # raises: the invitation was never made
        raise StepFailed(
            f"none within {cmd.within:g} s; {actor.name}'s last events: {self._last_events(actor)}"
        )

    async def _expect_no(self, actor: ActorRun, cmd: c.Expect) -> None:
        started = self.elapsed()
        with trio.move_on_after(cmd.within * self.scale):
            while True:
                known, inv_id = self._pending_id(cmd)
                if known:
                    rec = self._find(actor, cmd, inv_id)
                    if rec is not None:
                        when = (
                            "there was one already"
                            if rec.at <= started
                            else f"one came after {rec.at - started:.2f} s"
                        )
                        raise StepFailed(f"{when}: {brief(rec.obj, self.names)}")
                await self._changed.wait()

    def _last_events(self, actor: ActorRun) -> str:
        recent = actor.events[-LAST_EVENTS:]
        if not recent:
            return "none"
        return "; ".join(f"{brief(r.obj, self.names)} at {r.at:.2f} s" for r in recent)

    # --- the end ------------------------------------------------------------------------

    def sides(self) -> dict[str, list[tuple[ActorRun, InvitationInfo]]]:
        """Every invitation id → the actors that hold it and their view of it."""
        out: dict[str, list[tuple[ActorRun, InvitationInfo]]] = {}
        for actor in self.actors.values():
            if actor.phone is None:
                continue
            for info in actor.phone.infos():
                out.setdefault(info.id, []).append((actor, info))
        return out

    def _unsettled(self) -> list[tuple[ActorRun, InvitationInfo]]:
        return [
            (actor, info)
            for held in self.sides().values()
            for actor, info in held
            if actor.live and not terminal(info)
        ]

    async def _settle(self) -> None:
        cfg = self.scenario.config
        bound = (cfg.no_response_timeout + cfg.lifetime + 2 * cfg.confirm_timeout + 3) * self.scale
        with trio.move_on_after(bound):
            while self._unsettled():
                with trio.move_on_after(0.25):  # timers move states without an event
                    await self._changed.wait()

    def _label(self, inv_id: str) -> str:
        return self.names.get(inv_id, inv_id[:6])

    def _end_checks(self) -> None:
        problems = []
        for actor, info in self._unsettled():
            problems.append(
                f"invitation {self._label(info.id)} never ended: {actor.name} still "
                f"has it {info.state.name}"
            )
        for inv_id, held in self.sides().items():
            callers = [(a, i) for a, i in held if i.direction == "out" and not a.killed]
            callees = [(a, i) for a, i in held if i.direction == "in" and not a.killed]
            for ca, ci in callers:
                for ra, ri in callees:
                    if not (terminal(ci) and terminal(ri)):
                        continue
                    if _kind(ci) != _kind(ri):
                        problems.append(
                            f"invitation {self._label(inv_id)}: the two ends disagree: "
                            f"{ca.name} {pair(ci, None).split(' / ')[0]}, "
                            f"{ra.name} {pair(None, ri).split(' / ')[1]}"
                        )
        for actor in self.actors.values():
            for rec in actor.events:
                if rec.taken_by is None and rec.obj.get("event") in UNEXPECTED:
                    problems.append(
                        f"{actor.name} had an unexpected {brief(rec.obj, self.names)} "
                        f"at {rec.at:.2f} s (expect it if it is meant)"
                    )
        actual = self._outcomes()
        for name, wanted in self.scenario.outcomes.items():
            got = actual.get(name, "— / —")
            if not any(outcome_matches(w, got) for w in wanted):
                problems.append(f"invitation {name} ended {got}, expected {' or '.join(wanted)}")
        if problems:
            raise StepFailed("at the end: " + "; ".join(problems))

    def ends(
        self, held: list[tuple[ActorRun, InvitationInfo]]
    ) -> tuple[tuple[ActorRun, InvitationInfo] | None, InvitationInfo | None]:
        """The caller's (actor, view) and the callee's view of one invitation (from
        :meth:`sides`). A killed actor's view froze when its app died: it has none."""
        alive = [(a, i) for a, i in held if not a.killed]
        caller = next(((a, i) for a, i in alive if i.direction == "out"), None)
        callee = next((i for _, i in alive if i.direction == "in"), None)
        return caller, callee

    def _outcomes(self) -> dict[str, str]:
        held = self.sides()
        out = {}
        for name, inv_id in self.ids.items():
            caller, callee = self.ends(held.get(inv_id, []))
            out[name] = pair(caller[1] if caller else None, callee)
        return out


__all__ = ["QuietObserver", "ScenarioResult", "ScenarioRun", "StepFailed", "StepResult"]
