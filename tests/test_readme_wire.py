"""The README's "Wire format" section is frames.py's (docs cannot drift from code).

Every tag of the three tagged unions has a row in its table, each row names every field of
its struct by its wire name (``from``, not ``sender``), no row names a frame that does not
exist, and every code the section writes as ``NAME N`` has the enum's number.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from rtmcall.engine import codes
from rtmcall.engine.frames import ClientFrame, PeerMsg, ServerFrame

README = Path(__file__).resolve().parents[1] / "README.md"
HEADING = "### Wire format"

#: union -> (a tag only its table has, the tag field's name)
UNIONS: dict[str, tuple[Any, str]] = {
    "client frames": (ClientFrame, "login"),
    "server frames": (ServerFrame, "login_ok"),
    "peer messages": (PeerMsg, "invite"),
}
ENUMS = (
    codes.PeerMessageError,
    codes.LoginError,
    codes.ConnectionChangeReason,
    codes.PeerOnlineState,
)


def wire_section(text: str) -> str | None:
    """The lines from ``### Wire format`` to the next heading (outside code fences)."""
    lines = text.splitlines()
    try:
        start = lines.index(HEADING)
    except ValueError:
        return None
    out: list[str] = []
    fenced = False
    for line in lines[start + 1 :]:
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            break
        out.append(line)
    return "\n".join(out)


def tables(section: str) -> list[dict[str, str]]:
    """Each Markdown table of ``section`` as {tag: row}, the tags being the backticked
    words of a row's first cell (header and separator rows left out)."""
    found: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    header = False
    for line in section.splitlines():
        if not line.startswith("|"):
            current = None
            continue
        if current is None:
            current = {}
            found.append(current)
            header = True
            continue  # the header row
        if header:
            header = False
            continue  # the |---| row
        first = line.split("|")[1]
        for tag in re.findall(r"`([^`]+)`", first):
            current[tag] = line
    return found


def _tag(struct: type[msgspec.Struct]) -> str:
    tag = struct.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


def table_problems(section: str, union: Any, marker: str) -> list[str]:
    """What the section's table for ``union`` (the one with a ``marker`` row) gets wrong."""
    table = next((t for t in tables(section) if marker in t), None)
    if table is None:
        return [f"no table with a `{marker}` row"]
    problems = []
    structs = {_tag(s): s for s in union.__args__}
    for tag, struct in structs.items():
        row = table.get(tag)
        if row is None:
            problems.append(f"no row for `{tag}` ({struct.__name__})")
            continue
        for field in msgspec.structs.fields(struct):
            if f"`{field.encode_name}`" not in row:
                problems.append(f"row `{tag}` does not name field `{field.encode_name}`")
    for tag in table.keys() - structs.keys():
        problems.append(f"row `{tag}` is not a tag of frames.py")
    return problems


def code_problems(section: str) -> list[str]:
    """Every ``NAME N`` of an enum member in the section must be that member's number (a
    name in two enums, like TOO_OFTEN, may have either's)."""
    values: dict[str, set[int]] = {}
    for enum in ENUMS:
        for member in enum:
            values.setdefault(member.name, set()).add(member.value)
    problems = []
    for name, allowed in values.items():
        for number in re.findall(rf"\b{name} (\d+)\b", section):
            if int(number) not in allowed:
                problems.append(f"{name} {number}: the code says {sorted(allowed)}")
    return problems


def _section() -> str:
    section = wire_section(README.read_text(encoding="utf-8"))
    if section is None:
        pytest.fail(f"README.md has no {HEADING!r} section")
    return section


@pytest.mark.parametrize("name", UNIONS)
def test_every_frame_and_field_is_in_the_readme(name: str) -> None:
    union, marker = UNIONS[name]
    problems = table_problems(_section(), union, marker)
    assert not problems, f"README {HEADING}, {name}:\n" + "\n".join(problems)


def test_codes_in_the_readme_are_the_enums() -> None:
    problems = code_problems(_section())
    assert not problems, f"README {HEADING}:\n" + "\n".join(problems)
