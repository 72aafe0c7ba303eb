"""One scenario actor at run time: a real SDK client behind its own fault proxy, driven by the
softphone's dispatcher, with every event it reports recorded as the JSON object pipe mode
would print (so ``expect`` matches exactly what ``rtmcall login --json`` shows).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import trio

from rtmcall.cli.formats import jsonl as jsonfmt
from rtmcall.cli.sinks import JsonSink
from rtmcall.cli.softphone import Softphone
from rtmcall.client import ClientConfig, connect
from rtmcall.client.errors import ConnectFailed, LoginFailed, RtmError
from rtmcall.engine.codes import LoginError

from .model import Actor
from .proxy import FaultProxy

log = logging.getLogger("rtmcall.scenario")


@dataclass
class Recorded:
    """One event as the actor saw it; ``at`` is seconds since the scenario started."""

    obj: dict[str, Any]
    at: float
    #: The step (its number) whose ``expect`` took this event, if one did.
    taken_by: str | None = None


class RecordingSink(JsonSink):
    """Pipe mode's JSON lines, kept in memory instead of printed."""

    def __init__(self, actor: ActorRun) -> None:
        super().__init__()
        self._actor = actor

    def emit(self, obj: jsonfmt.JsonObject) -> None:
        self._actor.record(obj)

    def changed(self) -> None:
        self._actor.changed()


#: How long a scenario's set-up keeps trying a login refused as too often (s), and how
#: long it waits between tries.
LOGIN_PATIENCE = 5.0
LOGIN_RETRY = 0.5


@dataclass
class ActorRun:
    """Runs one actor's sessions (a ``login`` step starts a new one)."""

    spec: Actor
    config: ClientConfig
    proxy: FaultProxy
    nursery: trio.Nursery
    started: float
    events: list[Recorded] = field(default_factory=list)
    #: The newest session's softphone (kept after a logout: its invitations stay readable).
    phone: Softphone | None = None
    logged_in: bool = False
    killed: bool = False
    _scope: trio.CancelScope | None = None
    _changed: trio.Event = field(default_factory=trio.Event)
    _ended: trio.Event | None = None
    #: Told about every change (the runner's live view).
    on_change: Any = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def user(self) -> str:
        return self.spec.user

    @property
    def live(self) -> bool:
        """Logged in, not killed, the session not ended under us (kicked, aborted)."""
        return (
            self.logged_in
            and not self.killed
            and self.phone is not None
            and self.phone.ended is None
        )

    # --- the event record ---------------------------------------------------------------

    def record(self, obj: dict[str, Any]) -> None:
        self.events.append(Recorded(obj, trio.current_time() - self.started))
        self.changed()

    def changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()
        if self.on_change is not None:
            self.on_change()

    async def wait_change(self) -> None:
        await self._changed.wait()

    # --- sessions -----------------------------------------------------------------------

    async def login(self, *, patient: bool = False) -> None:
        """Log in through the proxy; a refusal is recorded as pipe mode reports it
        (``LoginFailure`` and an ``Error``), not raised.

        ``patient`` (a scenario's set-up): a login the server refuses as too often (a real
        server's per-user login rate: scenarios run back to back reuse the user ids) is
        tried again for up to :data:`LOGIN_PATIENCE` s, unrecorded. A ``login`` step is
        never patient: its refusal is what the step shows."""
        if self.killed:
            raise RtmError(f"{self.name} was killed; it cannot log in again")
        if self.live:
            raise RtmError(f"{self.name} is logged in already")
        give_up = trio.current_time() + LOGIN_PATIENCE
        try:
            while True:
                try:
                    await self.nursery.start(self._session)
                    return
                except LoginFailed as exc:
                    if not patient or exc.reason is not LoginError.TOO_OFTEN:
                        raise
                    if trio.current_time() + LOGIN_RETRY > give_up:
                        raise
                await trio.sleep(LOGIN_RETRY)
        except (ConnectFailed, LoginFailed) as exc:
            reason = exc.reason if isinstance(exc, LoginFailed) else LoginError.UNKNOWN
            message = str(exc)
            self.record(jsonfmt.login_failure(self.user, self.proxy.url, reason, message))
            self.record(jsonfmt.error(f"login: {message}"))

    async def _session(self, *, task_status: trio.TaskStatus[None]) -> None:
        self._ended = ended = trio.Event()
        try:
            await self._hold(task_status)
        finally:
            ended.set()

    async def _hold(self, task_status: trio.TaskStatus[None]) -> None:
        with trio.CancelScope() as scope:
            self._scope = scope
            async with connect(self.proxy.url, self.user, config=self.config) as client:
                phone = Softphone(client, RecordingSink(self))
                self.phone = phone
                self.logged_in = True
                self.record(jsonfmt.login_success(self.user, self.proxy.url))
                task_status.started()
                try:
                    await phone.pump()
                finally:
                    self.logged_in = False
                    self.changed()

    async def logout(self) -> None:
        """A clean logout (the server and the peers are told)."""
        if self.phone is not None and self.logged_in:
            try:
                await self.phone.client.logout()
            except RtmError:
                pass
        self.logged_in = False
        if self._scope is not None:
            self._scope.cancel()
        self.changed()

    def kill(self) -> None:
        """The app dies: its connection is reset and nothing it sends gets out any more."""
        self.proxy.kill()
        self.killed = True
        self.logged_in = False
        if self._scope is not None:
            self._scope.cancel()
        self.changed()

    async def stop(self) -> None:
        """End of the run: log out if still in (cancel first, as pipe mode does)."""
        if self.live and self.phone is not None:
            with trio.move_on_after(3):
                await self.phone.shutdown(settle_timeout=1.0, logout_timeout=1.0)
        if self._scope is not None:
            self._scope.cancel()
        if self._ended is not None:
            with trio.move_on_after(3):
                await self._ended.wait()
