"""The control socket's wire format (SPEC §7, :mod:`.endpoint`): JSON lines, and the
invitations, events and commands they carry, so each end rebuilds exactly what the other
had."""

from __future__ import annotations

import json
import shlex
from collections.abc import AsyncIterator
from dataclasses import fields
from enum import IntEnum
from typing import Any

import trio

from rtmcall.client.events import ConnectionStateChanged
from rtmcall.engine.codes import (
    CallEndReason,
    ConnectionChangeReason,
    ConnectionState,
    LocalInvitationError,
    LocalInvitationState,
    RemoteInvitationError,
    RemoteInvitationState,
)
from rtmcall.engine.events import (
    CallEnded,
    CallEvent,
    CallInfo,
    CallStarted,
    InvitationEvent,
    InvitationInfo,
    LocalInvitationInfo,
    RemoteInvitationInfo,
)

from .. import commands as c

#: 2: the events of the client's calls (CallStarted, CallEnded) cross too.
VERSION = 2
#: A line longer than this ends the connection (a call line is at most ~9 KB).
MAX_LINE = 256 * 1024
#: Lines queued for a client that does not read; beyond, it is disconnected.
MAX_QUEUED = 10_000
HELLO_TIMEOUT = 5.0

JsonObj = dict[str, Any]


def info_json(info: InvitationInfo) -> JsonObj:
    return {
        "direction": info.direction,
        "id": info.id,
        "caller": info.caller,
        "callee": info.callee,
        "content": info.content,
        "channel_id": info.channel_id,
        "response": info.response,
        "state": int(info.state),
        "error": int(info.error),
        "lifetime": info.lifetime,
    }


def info_from_json(obj: JsonObj) -> InvitationInfo:
    common = {k: str(obj[k]) for k in ("id", "caller", "callee", "content", "channel_id")}
    common["response"] = str(obj.get("response", ""))
    lifetime = obj.get("lifetime")
    life = float(lifetime) if isinstance(lifetime, int | float) else None
    if obj["direction"] == "out":
        return LocalInvitationInfo(
            **common,
            state=LocalInvitationState(obj["state"]),
            error=LocalInvitationError(obj["error"]),
            lifetime=life,
        )
    return RemoteInvitationInfo(
        **common,
        state=RemoteInvitationState(obj["state"]),
        error=RemoteInvitationError(obj["error"]),
        lifetime=life,
    )


def _event_classes() -> dict[str, type[InvitationEvent]]:
    found: dict[str, type[InvitationEvent]] = {}
    todo: list[type[InvitationEvent]] = [InvitationEvent]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            found[sub.__name__] = sub
            todo.append(sub)
    return found


def event_json(ev: object) -> JsonObj | None:
    """An event the one-shot can rebuild, or None for one it has no use for."""
    if isinstance(ev, InvitationEvent):
        obj: JsonObj = {"name": ev.name, "invitation": info_json(ev.invitation)}
        for field in fields(ev):  # type: ignore[arg-type]
            if field.name != "invitation":
                value = getattr(ev, field.name)
                obj[field.name] = int(value) if isinstance(value, IntEnum) else value
        return obj
    if isinstance(ev, ConnectionStateChanged):
        return {"name": ev.name, "state": int(ev.state), "reason": int(ev.reason)}
    if isinstance(ev, CallEvent):
        call = ev.call
        obj = {
            "name": ev.name,
            "call": {
                "id": call.id,
                "caller": call.caller,
                "callee": call.callee,
                "direction": call.direction,
                "reason": None if call.reason is None else int(call.reason),
            },
        }
        if isinstance(ev, CallEnded):
            obj["reason"], obj["duration"] = int(ev.reason), ev.duration
        return obj
    return None


def _call_from_json(obj: JsonObj) -> CallEvent | None:
    call = obj["call"]
    reason = call.get("reason")
    info = CallInfo(
        id=str(call["id"]),
        caller=str(call["caller"]),
        callee=str(call["callee"]),
        direction=str(call["direction"]),
        reason=None if reason is None else CallEndReason(reason),
    )
    if obj["name"] == "CallStarted":
        return CallStarted(info)
    return CallEnded(info, CallEndReason(obj["reason"]), float(obj.get("duration", 0.0)))


def event_from_json(obj: JsonObj) -> object | None:
    """The event again; None for one this version does not know (a newer softphone)."""
    name = obj.get("name")
    if name == "ConnectionStateChanged":
        return ConnectionStateChanged(
            ConnectionState(obj["state"]), ConnectionChangeReason(obj["reason"])
        )
    if name in ("CallStarted", "CallEnded"):
        try:
            return _call_from_json(obj)
        except (KeyError, TypeError, ValueError):
            return None
    cls = _event_classes().get(str(name))
    if cls is None:
        return None
    info = info_from_json(obj["invitation"])
    kwargs: dict[str, Any] = {"invitation": info}
    for field in fields(cls):  # type: ignore[arg-type]
        if field.name == "invitation" or field.name not in obj:
            continue
        value = obj[field.name]
        if field.name == "error":
            errors = LocalInvitationError if info.direction == "out" else RemoteInvitationError
            value = errors(value)
        kwargs[field.name] = value
    try:
        return cls(**kwargs)
    except TypeError:
        return None


def command_line(cmd: c.Command) -> str:
    """A command as a line of the command language (what :func:`commands.parse` reads),
    written as a person would type it: ``call dave --content 'lunch?'``."""
    name: str
    positional: list[str]
    options: list[str] = []
    match cmd:
        case c.Call(peers=peers, content=content, channel=channel, lifetime=lifetime):
            name, positional = "call", list(peers)
            if content:
                options += ["--content", content]
            if channel:
                options += ["--channel", channel]
            if lifetime is not None:
                options += ["--lifetime", repr(lifetime)]
        case c.Cancel(id=inv_id):
            name, positional = "cancel", [inv_id] if inv_id else []
        case c.Hangup(id=inv_id):
            name, positional = "hangup", [inv_id] if inv_id else []
        case c.Accept(id=inv_id, response=response) | c.Refuse(id=inv_id, response=response):
            name = "accept" if isinstance(cmd, c.Accept) else "refuse"
            positional = [inv_id] if inv_id else []
            if response:
                options += ["--response", response]
        case _:
            raise ValueError(f"not sent over the control socket: {cmd!r}")
    if any(word.startswith("-") for word in positional):
        # A peer named "--x" must not read as an option: after "--", at the end.
        return shlex.join([name, *options, "--", *positional])
    return shlex.join([name, *positional, *options])


class Lines:
    """JSON objects, one per line, from a stream; ends at EOF (or a broken stream)."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buf = b""

    async def next(self) -> JsonObj | None:
        while b"\n" not in self._buf:
            if len(self._buf) > MAX_LINE:
                return None
            try:
                chunk = await self._stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return None
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            obj = json.loads(line)
        except ValueError:
            return {"op": "invalid"}
        return obj if isinstance(obj, dict) else {"op": "invalid"}

    def __aiter__(self) -> AsyncIterator[JsonObj]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[JsonObj]:
        while (obj := await self.next()) is not None:
            yield obj


def encode(obj: JsonObj) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
