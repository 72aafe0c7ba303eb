"""Reading scenario files: YAML in, :class:`~.model.Scenario` objects out, or every problem
as one line that names the file, the line and the key path (``steps[3].bob``).

PyYAML's safe composer gives the document as nodes that know their line; they are turned
into plain values by hand (so that a duplicate key is an error and every value's line is
remembered), the top level goes through msgspec (strict: unknown keys and wrong types are
errors), then vars, actors, steps and outcomes are checked one by one, each step line by
the softphone's own parser. Nothing is started before every file has loaded without a problem.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import yaml

from rtmcall.cli import commands as c
from rtmcall.engine import frames as f
from rtmcall.engine.codes import (
    LocalInvitationError,
    LocalInvitationState,
    RemoteInvitationError,
    RemoteInvitationState,
)

from .model import (
    EVENTS,
    RESERVED,
    Actor,
    ActorOptions,
    ActorStep,
    ParallelStep,
    Scenario,
    ScenarioFields,
    ServerStep,
    SleepStep,
    Step,
    Where,
)

SUFFIXES = (".yaml", ".yml")
#: ``${NAME}`` in a step line.
VAR = re.compile(r"\$\{([^}]*)\}")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: Variables every run defines: a short id unique to the run, and the repeat index.
BUILTIN_VARS = ("run", "i")

_S = TypeVar("_S", bound=msgspec.Struct)


class ScenarioError(Exception):
    """One or more problems in scenario files; ``problems`` holds one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Doc:
    """One YAML document as plain values, with the line of every key path."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.lines: dict[str, int] = {}
        self.problems: list[str] = []
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            self.value = None if node is None else self._plain(loader, node, "")
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 1
            what = " ".join(str(x) for x in (exc.context, exc.problem) if x)
            self.problems.append(f"{file}:{line}: not valid YAML: {what}")
            self.value = None
        except yaml.YAMLError as exc:
            self.problems.append(f"{file}:1: not valid YAML: {exc}")
            self.value = None
        finally:
            loader.dispose()

    def _plain(self, loader: yaml.SafeLoader, node: yaml.Node, path: str) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node)
                if not isinstance(key, str):
                    key = str(key)
                sub = f"{path}.{key}" if path else key
                if key in out:
                    line = key_node.start_mark.line + 1
                    self.problems.append(f"{self.file}:{line}: {sub}: the key appears twice")
                    continue
                self.lines[sub] = key_node.start_mark.line + 1
                out[key] = self._plain(loader, value_node, sub)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._plain(loader, n, f"{path}[{i}]") for i, n in enumerate(node.value)]
        return loader.construct_object(node)

    def where(self, path: str) -> Where:
        """``path`` with the line of the nearest enclosing key path that has one.

        Any text is a path here, also one that names no key (msgspec's ``vars[...]``, a
        key with a dot or a bracket in it): the probe is cut at its last ``.`` or ``[``,
        so it is shorter each turn, and the file's first line is the answer at worst.
        """
        probe = path
        while probe and probe not in self.lines:
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[: max(cut, 0)]
        return Where(self.file, self.lines.get(probe, 1), path or "(top level)")


def _join(prefix: str, path: str) -> str:
    if not prefix or not path:
        return prefix or path
    return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}"


def _msgspec_path(message: str) -> tuple[str, str]:
    """Split msgspec's ``… - at `$.steps[3]``` into (what is wrong, ``steps[3]``)."""
    what, sep, at = message.rpartition(" - at `")
    if not sep:
        return message, ""
    path = at.rstrip("`").removeprefix("$").removeprefix(".")
    return what, path


_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(.*)`\Z", re.S)


def _struct_at(cls: type[msgspec.Struct], path: str) -> type[msgspec.Struct] | None:
    """The struct that decodes ``path`` (``config``) inside ``cls``, if one does."""
    for part in path.split(".") if path else ():
        fields = {f.name: f.type for f in msgspec.structs.fields(cls)}
        sub = fields.get(part)
        if not (isinstance(sub, type) and issubclass(sub, msgspec.Struct)):
            return None
        cls = sub
    return cls


def _unknown_key(key: str, cls: type[msgspec.Struct] | None) -> str:
    """``unknown key 'outcome' (did you mean 'outcomes'? keys: name, actors, …)``."""
    if cls is None:
        return f"unknown key {key!r}"
    keys = [f.name for f in msgspec.structs.fields(cls)]
    close = difflib.get_close_matches(key, keys, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key {key!r} ({hint}keys: {', '.join(keys)})"


def _kind(value: Any) -> str:
    """What a YAML value is, in a user's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class _Checker:
    """Checks one scenario mapping and builds the :class:`Scenario`."""

    def __init__(
        self, doc: _Doc, prefix: str, variables: Mapping[str, str], servers: int | None
    ) -> None:
        self.doc = doc
        self.prefix = prefix
        self.overrides = variables
        self.servers = servers
        self.problems: list[str] = []
        self.actors: dict[str, Actor] = {}
        #: Every actor the file declares, also one whose options have a problem (its
        #: steps are still checked, but are no "unknown actor").
        self.declared: list[str] = []
        #: invitation name -> where its ``call … --as NAME`` step is.
        self.names: dict[str, Where] = {}
        self.vars: dict[str, str] = {}

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{self.doc.where(_join(self.prefix, path))}: {message}")

    def convert(self, value: Any, cls: type[_S], path: str) -> _S | None:
        """``value`` as ``cls`` (strict), or None with the problem said at its key path:
        an unknown key at its own line, with the keys there are."""
        try:
            return msgspec.convert(value, cls, strict=True)
        except msgspec.ValidationError as exc:
            what, sub = _msgspec_path(str(exc))
            unknown = _UNKNOWN_FIELD.match(what)
            if unknown is None:
                self.problem(_join(path, sub), what)
            else:
                key = unknown.group(1)
                self.problem(_join(_join(path, sub), key), _unknown_key(key, _struct_at(cls, sub)))
            return None

    def check(self, value: Any) -> Scenario | None:
        top = self.convert(value, ScenarioFields, "")
        if top is None:
            return None
        self.vars = {}
        for k, v in top.vars.items():
            if not _VAR_NAME.match(k) or k in BUILTIN_VARS:
                self.problem(f"vars.{k}", "not a usable variable name")
            elif isinstance(v, str | int | float | bool):
                self.vars[k] = _scalar_text(v)
            else:
                empty = f' (nothing after the colon: write {k}: "" for empty text)'
                self.problem(
                    f"vars.{k}",
                    f"a variable is text, a number or true/false, not {_kind(v)}"
                    + (empty if v is None else ""),
                )
        self.vars.update(self.overrides)
        if top.timeout <= 0:
            self.problem("timeout", "must be a positive number of seconds")
        for key in ("no_response_timeout", "lifetime", "confirm_timeout"):
            if getattr(top.config, key) <= 0:
                self.problem(f"config.{key}", "must be a positive number of seconds")
        self._actors(top.actors)
        steps = self._steps(top.steps, "steps")
        outcomes = self._outcomes(top.outcomes)
        if self.problems:
            return None
        where = self.doc.where(self.prefix)
        return Scenario(
            name=top.name,
            file=self.doc.file,
            line=where.line,
            actors=self.actors,
            steps=steps,
            description=top.description,
            timeout=top.timeout,
            config=top.config,
            vars=self.vars,
            outcomes=outcomes,
        )

    def _actors(self, actors: dict[str, Any]) -> None:
        if not actors:
            self.problem("actors", "name at least one actor")
        for name, options in actors.items():
            path = f"actors.{name}"
            if name in RESERVED:
                self.problem(path, f"{name!r} is a step keyword, not a usable actor name")
                continue
            self.declared.append(name)
            opts = self.convert(options or {}, ActorOptions, path)
            if opts is None:
                continue
            user = name if opts.user is None else opts.user
            problem = f.user_id_problem(user)
            if problem is not None:
                self.problem(f"{path}.user" if opts.user is not None else path, problem)
            if opts.server is not None:
                if opts.server < 0:
                    self.problem(f"{path}.server", "a server index counts from 0")
                elif self.servers is not None and opts.server >= self.servers:
                    self.problem(
                        f"{path}.server",
                        f"server {opts.server} but {self.servers} --server given "
                        f"(indexes 0 to {self.servers - 1})",
                    )
            self.actors[name] = Actor(name, user, opts.login, opts.ack, opts.server)

    def _steps(self, raw: list[Any], path: str) -> tuple[Step, ...]:
        steps: list[Step] = []
        for i, item in enumerate(raw):
            step = self._step(item, f"{path}[{i}]")
            if step is not None:
                steps.append(step)
        return tuple(steps)

    def _step(self, item: Any, path: str) -> Step | None:
        where = self.doc.where(_join(self.prefix, path))
        if not isinstance(item, dict) or len(item) != 1:
            self.problem(
                path,
                "a step is a mapping with one key: an actor's name, parallel, sleep or server",
            )
            return None
        ((key, value),) = item.items()
        sub = f"{path}.{key}"
        where = self.doc.where(_join(self.prefix, sub))
        if key == "parallel":
            if not isinstance(value, list) or not value:
                self.problem(sub, "parallel takes a list of steps")
                return None
            return ParallelStep(self._steps(value, sub), where)
        if key == "sleep":
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                self.problem(sub, f"sleep takes a number of seconds, not {value!r}")
                return None
            return SleepStep(float(value), where)
        if key == "server":
            if value not in ("stop", "start", "restart"):
                self.problem(sub, f"server takes stop, start or restart, not {value!r}")
                return None
            if self.servers is not None:
                self.problem(sub, "server steps need the embedded server: drop --server")
                return None
            return ServerStep(value, where)
        if key not in self.declared:
            known = ", ".join(self.declared) or "none"
            self.problem(sub, f"unknown actor {key!r} (actors: {known})")
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.problem(sub, f"an actor's step is one command line, not {type(value).__name__}")
            return None
        line = str(value)
        if self._command(line, sub) is None or key not in self.actors:
            return None  # (an actor whose options have a problem: said at its options)
        return ActorStep(key, line, where)

    def _command(self, line: str, path: str) -> c.Command | None:
        missing = [
            name for name in VAR.findall(line) if name not in self.vars and name not in BUILTIN_VARS
        ]
        if missing:
            self.problem(path, f"unknown variable ${{{missing[0]}}} (give it in vars or --var)")
            return None
        sample = {**self.vars, "run": "r0", "i": "1"}
        try:
            cmd = c.parse(substitute(line, sample), scenario=True)
        except c.CommandError as exc:
            self.problem(path, str(exc))
            return None
        if cmd is None:
            self.problem(path, "the step has no command")
            return None
        if isinstance(cmd, c.Quit):
            self.problem(path, "quit: use logout (or kill) in scenario files")
            return None
        ref = invitation_ref(cmd)
        if ref is not None and ref not in self.names:
            self.problem(
                path,
                f"unknown invitation name {ref!r} (name one with `call PEER --as {ref}` "
                "in an earlier step)",
            )
            return None
        if isinstance(cmd, c.Expect) and cmd.event not in EVENTS:
            self.problem(
                path,
                f"{'expect-no' if cmd.absent else 'expect'}: unknown event {cmd.event!r} "
                "(an event name of SPEC §4, e.g. RemoteInvitationReceived)",
            )
            return None
        if isinstance(cmd, c.Net) and cmd.to is not None and self.servers is not None:
            if cmd.to >= self.servers:
                self.problem(
                    path,
                    f"net cut --to {cmd.to} but {self.servers} --server given "
                    f"(indexes 0 to {self.servers - 1})",
                )
                return None
        if isinstance(cmd, c.Call) and cmd.name is not None:
            first = self.names.get(cmd.name)
            if first is not None:
                self.problem(
                    path,
                    f"--as {cmd.name}: {cmd.name!r} already names the invitation of "
                    f"{first.path} (line {first.line}); give each call its own name",
                )
                return None
            self.names[cmd.name] = self.doc.where(_join(self.prefix, path))
        return cmd

    def _outcomes(self, outcomes: dict[str, Any]) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        for name, value in outcomes.items():
            path = f"outcomes.{name}"
            if name not in self.names:
                self.problem(path, f"no invitation is named {name!r} (`call … --as {name}`)")
                continue
            if not isinstance(value, str | list):
                self.problem(
                    path,
                    "an outcome is 'CALLER_STATE / CALLEE_STATE' or a list of them, "
                    f"not {_kind(value)}",
                )
                continue
            options = (value,) if isinstance(value, str) else tuple(value)
            wrong = [i for i, o in enumerate(options) if not isinstance(o, str)]
            for i in wrong:
                self.problem(
                    f"{path}[{i}]",
                    f"an outcome is 'CALLER_STATE / CALLEE_STATE', not {_kind(options[i])}",
                )
            if wrong:
                continue
            for option in options:
                problem = outcome_problem(option)
                if problem is not None:
                    self.problem(path, problem)
            out[name] = tuple(" / ".join(_side(p) for p in o.split("/")) for o in options)
        return out


def _scalar_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def substitute(line: str, variables: Mapping[str, str]) -> str:
    """Replace every ``${NAME}`` (an unknown one stays as written)."""
    return VAR.sub(lambda m: variables.get(m.group(1), m.group(0)), line)


def invitation_ref(cmd: c.Command) -> str | None:
    """The invitation NAME a step line refers to, if any."""
    match cmd:
        case c.Cancel(id=ref) | c.Accept(id=ref) | c.Refuse(id=ref):
            return ref
        case c.Wait(id=ref):
            return ref
        case c.Expect(name=ref):
            return ref
    hangup_id = getattr(cmd, "id", None)  # later commands that take an invitation (hangup)
    return hangup_id if isinstance(hangup_id, str) else None


_SIDE = re.compile(r"\s*([A-Z_]+)(?:\(([A-Z_]+)\))?\s*\Z")


def _side(part: str) -> str:
    """One side of an outcome as the runner writes it (``-`` for no view is ``—``)."""
    part = part.strip()
    return "—" if part == "-" else part


def outcome_problem(text: str) -> str | None:
    """Why ``text`` is not ``CALLER_STATE[(ERROR)] / CALLEE_STATE[(ERROR)]``, or None."""
    parts = text.split("/")
    if len(parts) != 2:
        return f"{text!r}: write the outcome as 'CALLER_STATE / CALLEE_STATE'"
    sides = (
        (parts[0], LocalInvitationState, LocalInvitationError, "caller"),
        (parts[1], RemoteInvitationState, RemoteInvitationError, "callee"),
    )
    for part, states, errors, who in sides:
        if _side(part) == "—":
            continue
        m = _SIDE.match(part)
        if not m or m.group(1) not in states.__members__:
            return f"{text!r}: {part.strip()!r} is no {who} state"
        if m.group(2) and m.group(2) not in errors.__members__:
            return f"{text!r}: {m.group(2)!r} is no {who} error"
    return None


def _files(paths: Iterable[str | Path]) -> tuple[list[Path], list[str]]:
    files: list[Path] = []
    problems: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
            if not found:
                problems.append(f"{path}: no scenario files (*.yaml, *.yml) in this folder")
            files.extend(found)
        elif path.is_file():
            if path.suffix not in SUFFIXES:
                problems.append(f"{path}: a scenario file ends in .yaml or .yml")
            else:
                files.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return files, problems


def load_text(
    text: str,
    file: str,
    *,
    variables: Mapping[str, str] | None = None,
    servers: int | None = None,
) -> list[Scenario]:
    """The scenarios of one file's text.

    Args:
      variables: ``--var`` values; they win over each scenario's ``vars``.
      servers: how many ``--server`` were given (None: the embedded server).

    Raises:
      ScenarioError: every problem found, one line each.
    """
    doc = _Doc(file, text)
    if doc.problems and doc.value is None:
        raise ScenarioError(doc.problems)
    problems = list(doc.problems)
    value = doc.value
    if value is None:
        raise ScenarioError([f"{file}:1: the file is empty (a scenario is a mapping with name)"])
    items: list[tuple[str, Any]]
    if isinstance(value, list):
        if not value:
            problems.append(f"{file}:1: the list of scenarios is empty")
        items = [(f"[{i}]", v) for i, v in enumerate(value)]
    else:
        items = [("", value)]
    scenarios: list[Scenario] = []
    for prefix, item in items:
        if not isinstance(item, dict):
            where = doc.where(prefix)
            problems.append(f"{where}: a scenario is a mapping (name, actors, steps)")
            continue
        checker = _Checker(doc, prefix, variables or {}, servers)
        scenario = checker.check(item)
        problems.extend(checker.problems)
        if scenario is not None:
            scenarios.append(scenario)
    if problems:
        raise ScenarioError(problems)
    return scenarios


def load_paths(
    paths: Iterable[str | Path],
    *,
    variables: Mapping[str, str] | None = None,
    servers: int | None = None,
) -> list[Scenario]:
    """Every scenario of the files and folders ``paths``, in order.

    Raises:
      ScenarioError: every problem in every file (nothing may run then).
    """
    files, problems = _files(paths)
    scenarios: list[Scenario] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: cannot read it: {exc}")
            continue
        try:
            scenarios.extend(load_text(text, str(path), variables=variables, servers=servers))
        except ScenarioError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ScenarioError(problems)
    seen: dict[str, Scenario] = {}
    for s in scenarios:
        if s.name in seen:
            other = seen[s.name]
            problems.append(
                f"{s.file}:{s.line}: name: {s.name!r} is also the name of the scenario at "
                f"{other.file}:{other.line} (--only and the reports need unique names)"
            )
        seen[s.name] = s
    if problems:
        raise ScenarioError(problems)
    return scenarios
