"""The softphone's command language, parsed into data: one parser for the interactive prompt
and for pipe mode, so both accept exactly the same lines.

A line is split like a POSIX shell's (:func:`shlex.split`); options take ``--opt VALUE`` or
``--opt=VALUE``. :func:`parse` never touches the network: it returns a command object or
raises :class:`CommandError` with a one-line message for the user.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass


class CommandError(ValueError):
    """A line that is not a valid command; the message is one line, for the user."""


@dataclass(frozen=True, slots=True)
class Call:
    peers: tuple[str, ...]
    content: str = ""
    channel: str = ""
    lifetime: float | None = None
    #: Scenario files: the name the new invitation goes by in later steps.
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Accept:
    id: str | None = None
    response: str = ""


@dataclass(frozen=True, slots=True)
class Refuse:
    id: str | None = None
    response: str = ""
    #: SPEC §6: ``declined`` (a person said no) or ``busy``.
    reason: str = "declined"


@dataclass(frozen=True, slots=True)
class Hangup:
    """End a call (SPEC §6); without an ID the newest call that is on."""

    id: str | None = None


@dataclass(frozen=True, slots=True)
class Dnd:
    """Do not disturb on or off; None: say whether it is on."""

    on: bool | None = None


@dataclass(frozen=True, slots=True)
class WhenBusy:
    """The busy policy from now on (``ring``/``refuse``); None: say which it is."""

    policy: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    """Show the call history (SPEC §6), newest first."""

    missed: bool = False
    peer: str | None = None
    limit: int = 20


@dataclass(frozen=True, slots=True)
class List:
    pass


@dataclass(frozen=True, slots=True)
class Online:
    peers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Help:
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class Quit:
    pass


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Wait:
    """Wait until invitation ``id`` (or every live one) ended, or with ``incoming`` until an
    incoming invitation rings; give up after ``timeout`` seconds."""

    id: str | None = None
    incoming: bool = False
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Expect:
    """Scenario files: wait until an event ``event`` (about invitation ``name``, with every
    key of ``match`` equal) arrives within ``within`` seconds; with ``absent``, fail if one
    is there or comes within ``within`` seconds (``expect-no … --for S``)."""

    event: str
    name: str | None = None
    #: (dotted JSON key, the value as written) pairs, in the order written.
    match: tuple[tuple[str, str], ...] = ()
    within: float = 5.0
    absent: bool = False


@dataclass(frozen=True, slots=True)
class Login:
    """Scenario files: log this actor in (a new session)."""


@dataclass(frozen=True, slots=True)
class Logout:
    """Scenario files: log this actor out cleanly."""


@dataclass(frozen=True, slots=True)
class Kill:
    """Scenario files: the connection drops without a logout and the client stops for good."""


@dataclass(frozen=True, slots=True)
class Net:
    """Scenario files: a fault on the line between this actor and its server.

    ``action`` is ``down`` (``seconds``: for how long, None until ``net up``), ``up``,
    ``delay`` (``seconds``: each direction's added latency; 0 ends it) or ``cut`` (``to``:
    the ``--server`` index the line leads to from now on, as when a balancer sends the
    reconnect to another node; None: the same)."""

    action: str
    seconds: float | None = None
    to: int | None = None


Command = (
    Call
    | Cancel
    | Accept
    | Refuse
    | Hangup
    | Dnd
    | WhenBusy
    | History
    | List
    | Online
    | Help
    | Quit
    | Sleep
    | Wait
    | Expect
    | Login
    | Logout
    | Kill
    | Net
)

#: name -> (usage, one-line description); also the order of `help`.
USAGE: dict[str, tuple[str, str]] = {
    "call": (
        "call PEER… [--content TEXT] [--channel ID] [--lifetime S]",
        "invite one or more peers",
    ),
    "cancel": ("cancel [ID]", "cancel your outgoing invitation (default: the newest)"),
    "accept": ("accept [ID] [--response TEXT]", "accept an incoming invitation"),
    "refuse": (
        "refuse [ID] [--response TEXT] [--reason busy|declined]",
        "refuse an incoming invitation",
    ),
    "hangup": ("hangup [ID]", "end a call (default: the newest call that is on)"),
    "dnd": ("dnd on|off", "do not disturb: refuse every call as busy while on"),
    "when-busy": (
        "when-busy ring|refuse",
        "a call that comes while another rings or a call is on: ring, or refuse as busy",
    ),
    "history": (
        "history [--missed] [--peer P] [--limit N]",
        "your past calls, newest first (also: rtmcall history)",
    ),
    "list": ("list", "print every invitation of this session"),
    "online": ("online PEER…", "ask whether peers are online"),
    "wait": (
        "wait [ID] [--incoming] [--timeout S]",
        "wait until ID (default: every live invitation) ends, or until a call comes in",
    ),
    "sleep": ("sleep S", "pause for S seconds (for scripts)"),
    "help": ("help [COMMAND]", "show the commands"),
    "quit": ("quit", "cancel your ringing calls, log out and exit"),
}
ALIASES = {"exit": "quit", "ls": "list", "?": "help", "q": "quit", "when_busy": "when-busy"}

#: Commands of scenario files only (``rtmcall scenario``, SPEC §5): name -> (usage, text).
SCENARIO_USAGE: dict[str, tuple[str, str]] = {
    "expect": (
        "expect EVENT [NAME] [KEY=VALUE]… [--within S]",
        "wait (default 5 s) for an event about invitation NAME whose keys have these values",
    ),
    "expect-no": (
        "expect-no EVENT [NAME] [KEY=VALUE]… --for S",
        "fail if such an event is there or comes within S seconds",
    ),
    "login": ("login", "log this actor in"),
    "logout": ("logout", "log this actor out"),
    "kill": ("kill", "drop the connection without a logout; the client stops for good"),
    "net": (
        "net down [S] | net up | net delay MS | net cut [--to N]",
        "a fault on this actor's line",
    ),
}
#: Scenario files: ``call … --as NAME`` names the new invitation.
_CALL_OPTIONS = {"--content": "content", "--channel": "channel", "--lifetime": "lifetime"}


def _number(cmd: str, opt: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CommandError(f"{cmd}: {opt} needs a number of seconds, not {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise CommandError(f"{cmd}: {opt} must be a positive number of seconds")
    return value


def _split_options(
    cmd: str, words: list[str], options: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """Separate positional words from ``--opt VALUE`` pairs. ``options`` maps every accepted
    spelling to its canonical name; a value of ``""`` marks a flag without a value."""
    positional: list[str] = []
    found: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":  # everything after is positional, e.g. a peer named "--x"
            positional.extend(words[i + 1 :])
            break
        if word.startswith("--") and len(word) > 2:
            name, eq, value = word.partition("=")
            if name not in options:
                known = ", ".join(sorted({o for o in options if o.startswith("--")}))
                hint = f" (it takes {known})" if known else ""
                raise CommandError(f"{cmd}: unknown option {name}{hint}")
            canonical = options[name]
            if canonical.startswith("flag:"):
                if eq:
                    raise CommandError(f"{cmd}: {name} takes no value")
                found[canonical[5:]] = "1"
            elif eq:
                found[canonical] = value
            else:
                if i + 1 >= len(words):
                    raise CommandError(f"{cmd}: {name} needs a value")
                i += 1
                found[canonical] = words[i]
        else:
            positional.append(word)
        i += 1
    return positional, found


def _at_most_one_id(cmd: str, positional: list[str]) -> str | None:
    if len(positional) > 1:
        raise CommandError(f"{cmd}: takes at most one invitation ID, got {len(positional)}")
    return positional[0] if positional else None


def _expect(name: str, args: list[str]) -> Expect:
    absent = name == "expect-no"
    window = "--for" if absent else "--within"
    pos, opts = _split_options(name, args, {window: "window"})
    if not pos:
        raise CommandError(f"{name}: name the EVENT, e.g. {name} RemoteInvitationReceived c1")
    event, rest = pos[0], pos[1:]
    inv: str | None = None
    match: list[tuple[str, str]] = []
    for word in rest:
        key, eq, value = word.partition("=")
        if eq:
            if not key:
                raise CommandError(f"{name}: {word!r} has no KEY before '='")
            match.append((key, value))
        elif inv is None and not match:
            inv = word
        else:
            raise CommandError(
                f"{name}: {word!r} is neither the invitation NAME (it comes right after the "
                "EVENT) nor KEY=VALUE"
            )
    if absent and "window" not in opts:
        raise CommandError("expect-no: give how long nothing may come, e.g. --for 1")
    within = _number(name, window, opts["window"]) if "window" in opts else 5.0
    return Expect(event, inv, tuple(match), within, absent)


def _net(args: list[str]) -> Net:
    actions = "net down [S], net up, net delay MS or net cut [--to N]"
    if not args:
        raise CommandError(f"net: say what the line does: {actions}")
    action, rest = args[0].lower(), args[1:]
    if action == "up":
        if rest:
            raise CommandError("net up: takes no arguments")
        return Net(action)
    if action == "cut":
        if not rest:
            return Net("cut")
        if len(rest) != 2 or rest[0] != "--to":
            raise CommandError("net cut: takes only --to N (the --server to reconnect to)")
        if not rest[1].isdigit():
            raise CommandError(f"net cut --to: needs a --server index (0, 1, …), not {rest[1]!r}")
        return Net("cut", to=int(rest[1]))
    if action == "down":
        if len(rest) > 1:
            raise CommandError("net down: takes at most the number of seconds")
        return Net("down", _number("net down", "the duration", rest[0]) if rest else None)
    if action == "delay":
        if len(rest) != 1:
            raise CommandError("net delay: give the delay in milliseconds, e.g. net delay 300")
        try:
            ms = float(rest[0])
        except ValueError:
            raise CommandError(f"net delay: needs milliseconds, not {rest[0]!r}") from None
        if not math.isfinite(ms) or ms < 0:
            raise CommandError("net delay: must be a positive number of milliseconds")
        return Net("delay", ms / 1000)
    raise CommandError(f"net: no action {args[0]!r}; it takes {actions}")


def parse(line: str, *, scenario: bool = False) -> Command | None:
    """Parse one command line; None for a blank line or a ``#`` comment.

    With ``scenario`` (a step of a scenario file) the scenario commands are accepted too
    (``expect``, ``expect-no``, ``login``, ``logout``, ``kill``, ``net``, ``call … --as``);
    elsewhere they are an error that says where they belong.

    Raises:
        CommandError: unknown command, bad quoting, unknown option, missing argument.
    """
    try:
        words = shlex.split(line, comments=True)
    except ValueError as exc:  # e.g. "No closing quotation"
        raise CommandError(f"cannot split the line: {exc}") from None
    if not words:
        return None
    name, args = words[0].lower(), words[1:]
    name = ALIASES.get(name, name)
    if name in SCENARIO_USAGE and not scenario:
        raise CommandError(f"{name}: only in scenario files (rtmcall scenario FILE)")
    if name == "call":
        options = {**_CALL_OPTIONS, "--as": "as"} if scenario else _CALL_OPTIONS
        pos, opts = _split_options(name, args, options)
        if not pos:
            raise CommandError("call: name at least one PEER to call")
        if "as" in opts and len(pos) > 1:
            raise CommandError("call: --as names one invitation; call one PEER per step")
        if "as" in opts and (not opts["as"] or "=" in opts["as"]):
            raise CommandError(f"call: --as {opts['as']!r} is not a usable name")
        lifetime = opts.get("lifetime")
        return Call(
            peers=tuple(pos),
            content=opts.get("content", ""),
            channel=opts.get("channel", ""),
            lifetime=_number(name, "--lifetime", lifetime) if lifetime is not None else None,
            name=opts.get("as"),
        )
    if name in ("expect", "expect-no"):
        return _expect(name, args)
    if name == "net":
        return _net(args)
    if name in ("login", "logout", "kill"):
        if args:
            raise CommandError(f"{name}: takes no arguments")
        return {"login": Login, "logout": Logout, "kill": Kill}[name]()
    if name == "cancel":
        pos, _ = _split_options(name, args, {})
        return Cancel(_at_most_one_id(name, pos))
    if name == "accept":
        pos, opts = _split_options(name, args, {"--response": "response"})
        return Accept(_at_most_one_id(name, pos), opts.get("response", ""))
    if name == "refuse":
        pos, opts = _split_options(name, args, {"--response": "response", "--reason": "reason"})
        reason = opts.get("reason", "declined")
        if reason not in ("busy", "declined"):
            raise CommandError(f"refuse: --reason is busy or declined, not {reason!r}")
        return Refuse(_at_most_one_id(name, pos), opts.get("response", ""), reason)
    if name == "hangup":
        pos, _ = _split_options(name, args, {})
        if len(pos) > 1:
            raise CommandError(f"hangup: takes at most one call ID, got {len(pos)}")
        return Hangup(pos[0] if pos else None)
    if name == "dnd":
        pos, _ = _split_options(name, args, {})
        if len(pos) > 1 or (pos and pos[0].lower() not in ("on", "off")):
            raise CommandError("dnd: say dnd on or dnd off")
        return Dnd(None if not pos else pos[0].lower() == "on")
    if name == "when-busy":
        pos, _ = _split_options(name, args, {})
        if len(pos) > 1 or (pos and pos[0].lower() not in ("ring", "refuse")):
            raise CommandError("when-busy: say when-busy ring or when-busy refuse")
        return WhenBusy(pos[0].lower() if pos else None)
    if name == "history":
        pos, opts = _split_options(
            name, args, {"--missed": "flag:missed", "--peer": "peer", "--limit": "limit"}
        )
        if pos:
            raise CommandError("history: takes only --missed, --peer P and --limit N")
        limit = opts.get("limit", "20")
        if not limit.isdigit() or int(limit) < 1:
            raise CommandError(f"history: --limit needs a whole number above 0, not {limit!r}")
        return History("missed" in opts, opts.get("peer"), int(limit))
    if name == "online":
        pos, _ = _split_options(name, args, {})
        if not pos:
            raise CommandError("online: name at least one PEER")
        return Online(tuple(pos))
    if name == "wait":
        pos, opts = _split_options(
            name, args, {"--timeout": "timeout", "--incoming": "flag:incoming"}
        )
        timeout = opts.get("timeout")
        incoming = "incoming" in opts
        if incoming and pos:
            raise CommandError("wait: give an ID or --incoming, not both")
        return Wait(
            _at_most_one_id(name, pos),
            incoming=incoming,
            timeout=_number(name, "--timeout", timeout) if timeout is not None else None,
        )
    if name == "sleep":
        pos, _ = _split_options(name, args, {})
        if len(pos) != 1:
            raise CommandError("sleep: give the number of seconds, e.g. sleep 1.5")
        return Sleep(_number(name, "sleep", pos[0]))
    if name in ("list", "quit"):
        if args:
            raise CommandError(f"{name}: takes no arguments")
        return List() if name == "list" else Quit()
    if name == "help":
        if len(args) > 1:
            raise CommandError("help: takes at most one COMMAND")
        topic = ALIASES.get(args[0].lower(), args[0].lower()) if args else None
        if topic is not None and topic not in USAGE:
            raise CommandError(f"help: no command {args[0]!r}; type help for the list")
        return Help(topic)
    raise CommandError(f"unknown command {words[0]!r}; type help for the list")


def help_lines(topic: str | None = None) -> list[str]:
    """The help text, one line per command (or just ``topic``'s)."""
    names = [topic] if topic else list(USAGE)
    width = max(len(USAGE[n][0]) for n in names)
    lines = [f"{USAGE[n][0]:<{width}}  {USAGE[n][1]}" for n in names]
    if topic is None:
        lines.append("IDs may be shortened to any unique prefix; quote text with spaces.")
    return lines
