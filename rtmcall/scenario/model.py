"""Scenario files (SPEC §5) as data: the structs a file decodes into, and the steps.

The file's shape is checked by msgspec (strict: no unknown key, no coercion); every step line
is checked by the softphone's own command parser (:func:`rtmcall.cli.commands.parse` with
``scenario=True``). Nothing here runs anything: :mod:`.load` builds these objects, the runner
(:mod:`.runner`) plays them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

import msgspec

#: Keys of a step mapping that are not actor names.
RESERVED = frozenset({"parallel", "sleep", "server"})

#: The event names an ``expect`` may name: pipe mode's JSON events (SPEC §4, §6).
EVENTS = frozenset(
    {
        "LocalInvitationSent",
        "LocalInvitationReceivedByPeer",
        "LocalInvitationAccepted",
        "LocalInvitationRefused",
        "LocalInvitationCanceled",
        "LocalInvitationFailure",
        "RemoteInvitationReceived",
        "RemoteInvitationAccepted",
        "RemoteInvitationRefused",
        "RemoteInvitationCanceled",
        "RemoteInvitationFailure",
        "CallStarted",
        "CallEnded",
        "MissedCalls",
        "HistoryEntry",
        "Invitation",
        "Help",
        "Notice",
        "LoginSuccess",
        "LoginFailure",
        "ApiCallError",
        "PeersOnlineStatus",
        "PeersOnlineStatusChanged",
        "ConnectionStateChanged",
        "MessageFromPeer",
        "TokenPrivilegeWillExpire",
        "Error",
    }
)


class Config(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The client windows of every actor, in seconds (Agora's defaults)."""

    no_response_timeout: float = 30.0
    lifetime: float = 60.0
    confirm_timeout: float = 5.0


class ActorOptions(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    #: The user id (default: the actor's name).
    user: str | None = None
    #: Logged in before the first step (False: only at a ``login`` step).
    login: bool = True
    #: False: this client never sends the automatic ACK (online, but never answers).
    ack: bool = True
    #: Which ``--server`` (0-based); None: round-robin in the order the actors are listed.
    server: int | None = None


class ScenarioFields(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The top level of one scenario; actors and steps are checked one by one afterwards
    (so that an error can name the actor or step it is about)."""

    name: str
    actors: dict[str, Any]
    steps: list[Any]
    description: str = ""
    timeout: float = 60.0
    config: Config = Config()
    #: NAME -> a string, a number or a boolean. (The loader checks the values of ``vars``
    #: and ``outcomes`` one by one: msgspec would name a wrong one only as ``vars[...]``,
    #: not by its key.)
    vars: dict[str, Any] = {}
    #: Beyond SPEC §5: the outcome each named invitation must end with, as
    #: ``"CALLER_STATE / CALLEE_STATE"`` (``FAILURE(PEER_OFFLINE) / —``), or a list of them.
    outcomes: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Where:
    """Where a thing stands in its file, for messages: ``file:line: key.path``."""

    file: str
    line: int
    path: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path}"


@dataclass(frozen=True, slots=True)
class ActorStep:
    actor: str
    #: The line as written (``${vars}`` not yet replaced).
    line: str
    where: Where


@dataclass(frozen=True, slots=True)
class SleepStep:
    seconds: float
    where: Where


@dataclass(frozen=True, slots=True)
class ServerStep:
    action: str  # stop | start | restart
    where: Where


@dataclass(frozen=True, slots=True)
class ParallelStep:
    steps: tuple[Step, ...]
    where: Where


Step: TypeAlias = "ActorStep | SleepStep | ServerStep | ParallelStep"


@dataclass(frozen=True, slots=True)
class Actor:
    name: str
    user: str
    login: bool = True
    ack: bool = True
    server: int | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    file: str
    line: int
    actors: dict[str, Actor]
    steps: tuple[Step, ...]
    description: str = ""
    timeout: float = 60.0
    config: Config = Config()
    vars: dict[str, str] = field(default_factory=dict)
    #: invitation name -> the outcomes that would be right ("caller / callee").
    outcomes: dict[str, tuple[str, ...]] = field(default_factory=dict)


def step_text(step: Step) -> str:
    """A step in one line, as the reports show it."""
    match step:
        case ActorStep(actor=actor, line=line):
            return f"{actor}: {line}"
        case SleepStep(seconds=seconds):
            return f"sleep: {seconds:g}"
        case ServerStep(action=action):
            return f"server: {action}"
        case ParallelStep(steps=steps):
            return "parallel: [" + "; ".join(step_text(s) for s in steps) + "]"
    return "?"
