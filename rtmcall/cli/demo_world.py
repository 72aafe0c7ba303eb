"""The demo's world: one in-process server, users logged in and out on demand, a "mute"
user whose client never answers, and waiting for a condition with a time bound."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from rtmcall.client import ClientConfig, RtmClient, connect
from rtmcall.engine import frames as f
from rtmcall.engine.engine import LocalInvitation

from .demo_view import DemoRow


@dataclass
class Check:
    """One invitation a scenario made, and the outcomes that would be right."""

    scenario: str
    invitation: LocalInvitation
    expected: tuple[str, ...]
    callee: str = ""

    def __post_init__(self) -> None:
        self.callee = self.callee or self.invitation.callee


@dataclass
class World:
    url: str
    config: ClientConfig
    nursery: trio.Nursery
    #: Scale of every wait in the scenarios (1 / --speed).
    scale: float = 1.0
    clients: dict[str, RtmClient] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    _scopes: dict[str, trio.CancelScope] = field(default_factory=dict)
    _changed: trio.Event = field(default_factory=trio.Event)

    def notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def until(self, condition: Callable[[], bool], within: float) -> None:
        """Wait until ``condition()`` holds; TooSlowError after ``within`` (scaled) seconds."""
        with trio.fail_after(within * self.scale):
            while not condition():
                with trio.move_on_after(0.05):  # also re-check now and then (timers)
                    await self._changed.wait()

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds * self.scale)

    # --- users --------------------------------------------------------------------------

    async def login(self, user: str) -> RtmClient:
        return await self.nursery.start(self._hold, user)

    async def _hold(self, user: str, *, task_status: trio.TaskStatus[RtmClient]) -> None:
        with trio.CancelScope() as scope:
            self._scopes[user] = scope
            async with connect(self.url, user, config=self.config) as client:
                self.clients[user] = client
                async with client.events() as events:  # subscribed before any checkpoint
                    task_status.started(client)
                    async for _ in events:
                        self.notify()

    async def logout(self, user: str) -> None:
        await self.clients[user].logout()
        self.notify()
        self._scopes[user].cancel()

    async def login_mute(self, user: str) -> None:
        """A user whose client logs in and keeps its connection alive but never answers an
        invitation, not even with the automatic ACK: a raw WebSocket, not the SDK."""
        await self.nursery.start(self._mute, user)

    async def _mute(self, user: str, *, task_status: trio.TaskStatus[None]) -> None:
        async with open_websocket_url(self.url) as ws:
            await ws.send_message(f.encode(f.Login(user=user)).decode())
            while not isinstance(f.decode_server_frame(await ws.get_message()), f.LoginOk):
                pass
            task_status.started()
            async with trio.open_nursery() as nursery:

                async def heartbeat() -> None:
                    while True:
                        await ws.send_message(f.encode(f.Ping()).decode())
                        await trio.sleep(1.0)

                nursery.start_soon(heartbeat)
                try:
                    while True:
                        await ws.get_message()  # invitations arrive here and are ignored
                except ConnectionClosed:
                    nursery.cancel_scope.cancel()

    # --- invitations --------------------------------------------------------------------

    async def call(
        self, scenario: str, caller: str, callee: str, expected: tuple[str, ...], **kw: object
    ) -> LocalInvitation:
        inv = await self.clients[caller].call(callee, **kw)  # type: ignore[arg-type]
        self.checks.append(Check(scenario, inv, expected))
        self.notify()
        return inv

    def remote(self, user: str, inv: LocalInvitation):  # type: ignore[no-untyped-def]
        client = self.clients.get(user)
        return client.remote_invitations.get(inv.id) if client else None

    def ringing(self, user: str, inv: LocalInvitation) -> bool:
        rinv = self.remote(user, inv)
        return rinv is not None and rinv.state.name == "INVITATION_RECEIVED"

    def settled(self, check: Check) -> bool:
        rinv = self.remote(check.callee, check.invitation)
        return check.invitation.terminal and (rinv is None or rinv.terminal)

    def rows(self, now: float) -> list[DemoRow]:
        """Snapshot for the live table; deadlines moved to the base of ``now``."""
        rows = []
        trio_now = trio.current_time()
        for check in self.checks:
            inv = check.invitation
            caller = self.clients[inv.caller]
            at = caller.timer_deadline(inv) if inv.live else None
            rinv = self.remote(check.callee, inv)
            deadline = None if at is None or math.isinf(at) else now + (at - trio_now)
            rows.append(
                DemoRow(check.scenario, inv.info(), rinv.info() if rinv else None, deadline)
            )
        return rows
