"""Matching an ``expect`` against an actor's events: pure functions over JSON objects.

An event matches ``expect EVENT [NAME] [KEY=VALUE]…`` when its ``event`` key is EVENT, its
``id`` is the invitation NAME stands for (when a NAME is given), and every KEY's value equals
VALUE compared as JSON scalars: ``state_code=4`` is the number 4, ``error=PEER_OFFLINE`` the
string, ``"x=true"`` the boolean, and a value that is an actor's name stands for its user id.
A KEY may be a dotted path into a nested object (``peers.bob=ONLINE``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

_MISSING = object()


def outcome_matches(wanted: str, got: str) -> bool:
    """Whether an invitation that ended ``got`` (``STATE[(ERROR)] / STATE[(ERROR)]``, ``—``
    for a side with no view) is the outcome ``wanted``: a side written without its
    ``(ERROR)`` matches that state with any error (``FAILURE`` is any failure)."""
    wants, haves = wanted.split("/"), got.split("/")
    if len(wants) != 2 or len(haves) != 2:
        return False
    return all(_side_matches(w.strip(), h.strip()) for w, h in zip(wants, haves, strict=True))


def _side_matches(want: str, have: str) -> bool:
    return want == have or ("(" not in want and have.startswith(want + "("))


def expected_value(raw: str, users: Mapping[str, str]) -> Any:
    """VALUE as written → the JSON value it stands for."""
    if raw in users:
        return users[raw]
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if value is None or isinstance(value, str | int | float | bool) else raw


def _same(actual: Any, wanted: Any, raw: str) -> bool:
    if isinstance(actual, bool) or isinstance(wanted, bool):
        return isinstance(actual, bool) and isinstance(wanted, bool) and actual == wanted
    if actual == wanted:
        return True
    # content=123 means the text "123" when the event carries text.
    return isinstance(actual, str) and actual == raw


def lookup(obj: Mapping[str, Any], key: str, users: Mapping[str, str]) -> Any:
    """``obj[key]``, following dots into nested objects; an actor's name as a part of the
    path also finds its user id (``peers.bob`` when bob's user id is ``bob-2``)."""
    node: Any = obj
    for part in key.split("."):
        if not isinstance(node, Mapping):
            return _MISSING
        if part in node:
            node = node[part]
        elif part in users and users[part] in node:
            node = node[users[part]]
        else:
            return _MISSING
    return node


def matches(
    obj: Mapping[str, Any],
    event: str,
    inv_id: str | None,
    match: Sequence[tuple[str, str]],
    users: Mapping[str, str],
) -> bool:
    if obj.get("event") != event:
        return False
    if inv_id is not None and obj.get("id") != inv_id:
        return False
    for key, raw in match:
        actual = lookup(obj, key, users)
        if actual is _MISSING or not _same(actual, expected_value(raw, users), raw):
            return False
    return True


def brief(obj: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """An event in a few words for failure messages: ``RemoteInvitationReceived c1
    (state=INVITATION_RECEIVED)``; ids are shown by the name they go by, when they have one."""
    event = str(obj.get("event", "?"))
    words = [event]
    inv_id = obj.get("id")
    if isinstance(inv_id, str):
        words.append(names.get(inv_id, inv_id[:6]))
    details = []
    for key in ("state", "error", "reason", "response", "message"):
        value = obj.get(key)
        if value not in (None, ""):
            details.append(f"{key}={value}")
    if details:
        words.append("(" + ", ".join(details) + ")")
    return " ".join(words)
