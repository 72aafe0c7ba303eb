"""Scenario files that are wrong: every problem is one line naming the file, the line and
the key path, and nothing is returned (so nothing runs)."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from rtmcall.scenario.load import ScenarioError, load_paths, load_text

GOOD = """\
name: ok
config: {no_response_timeout: 2, lifetime: 3, confirm_timeout: 1}
vars: {greeting: hi}
actors: {alice: {}, bob: {user: bob-2, server: 0}, carol: {login: false, ack: false}}
steps:
  - alice: call bob --content "${greeting} ${run}" --as c1
  - bob: expect RemoteInvitationReceived c1 content=hi --within 2
  - parallel:
      - alice: cancel c1
      - bob: accept c1 --response "on my way"
  - sleep: 0.5
  - carol: login
  - server: restart
  - alice: expect-no LocalInvitationAccepted c1 --for 1
outcomes: {c1: [CANCELED / CANCELED, ACCEPTED_BY_REMOTE / ACCEPTED]}
"""


def problems(text: str, **kw: object) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_text(dedent(text), "f.yaml", **kw)  # type: ignore[arg-type]
    return info.value.problems


def test_a_good_file_loads_with_everything_it_says() -> None:
    (s,) = load_text(GOOD, "f.yaml")
    assert s.name == "ok" and s.config.lifetime == 3.0
    assert s.actors["bob"].user == "bob-2" and s.actors["carol"].login is False
    assert s.actors["carol"].ack is False and s.actors["alice"].user == "alice"
    assert [type(step).__name__ for step in s.steps] == [
        "ActorStep",
        "ActorStep",
        "ParallelStep",
        "SleepStep",
        "ActorStep",
        "ServerStep",
        "ActorStep",
    ]
    assert s.steps[1].where.line == 7 and s.steps[1].where.path == "steps[1].bob"
    assert s.outcomes["c1"] == ("CANCELED / CANCELED", "ACCEPTED_BY_REMOTE / ACCEPTED")
    assert s.vars == {"greeting": "hi"}


def test_var_overrides_win_over_the_files_vars() -> None:
    (s,) = load_text(GOOD, "f.yaml", variables={"greeting": "yo"})
    assert s.vars["greeting"] == "yo"


def test_a_list_of_scenarios_in_one_file() -> None:
    text = "- {name: a, actors: {x: {}}, steps: []}\n- {name: b, actors: {x: {}}, steps: []}\n"
    assert [s.name for s in load_text(text, "f.yaml")] == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\nactors: {a: {}}\nsteps: [\n", "f.yaml:4: not valid YAML"),
        (
            "name: x\nactors: {a: {}}\nsteps: []\ncolour: red\n",
            "f.yaml:1: (top level): Object contains unknown field `colour`",
        ),
        ("actors: {a: {}}\nsteps: []\n", "missing required field `name`"),
        (
            "name: x\ntimeout: soon\nactors: {a: {}}\nsteps: []\n",
            "f.yaml:2: timeout: Expected `float`, got `str`",
        ),
        (
            "name: x\nactors:\n  a: {sever: 1}\nsteps: []\n",
            "f.yaml:3: actors.a: Object contains unknown field `sever`",
        ),
        (
            "name: x\nactors:\n  a: {login: maybe}\nsteps: []\n",
            "f.yaml:3: actors.a.login: Expected `bool`, got `str`",
        ),
        (
            "name: x\nactors: {a: {}}\nsteps:\n  - a: call b\n  - bob: accept\n",
            "f.yaml:5: steps[1].bob: unknown actor 'bob' (actors: a)",
        ),
        (
            "name: x\nactors: {a: {}}\nsteps:\n  - a: cal b\n",
            "f.yaml:4: steps[0].a: unknown command 'cal'",
        ),
        (
            "name: x\nactors: {a: {}}\nsteps:\n  - a: accept c9\n",
            "f.yaml:4: steps[0].a: unknown invitation name 'c9'",
        ),
        (
            "name: x\nactors: {a: {}}\nsteps:\n  - a: call b --as c1\n  - a: expect Ringing c1\n",
            "f.yaml:5: steps[1].a: expect: unknown event 'Ringing'",
        ),
        (
            "name: x\nactors: {a: {}}\nsteps:\n  - a: expect LoginSuccess --within soon\n",
            "f.yaml:4: steps[0].a: expect: --within needs a number of seconds, not 'soon'",
        ),
        (
            "name: x\nactors: {a: {}}\nsteps:\n  - a: expect-no Error\n",
            "steps[0].a: expect-no: give how long nothing may come",
        ),
        (
            "name: x\nactors: {a: {}}\nsteps:\n  - a: net sideways\n",
            "steps[0].a: net: no action 'sideways'",
        ),
        (
            "name: x\nactors: {a: {}}\nsteps:\n  - a: call b ${who}\n",
            "steps[0].a: unknown variable ${who}",
        ),
        (
            "name: x\nactors: {a: {}}\nsteps:\n  - {a: login, b: logout}\n",
            "steps[0]: a step is a mapping with one key",
        ),
        (
            "name: x\nactors: {a: {}}\nsteps:\n  - sleep: forever\n",
            "f.yaml:4: steps[0].sleep: sleep takes a number of seconds",
        ),
        (
            "name: x\nactors: {a: {}}\nsteps:\n  - server: reboot\n",
            "steps[0].server: server takes stop, start or restart",
        ),
        (
            "name: x\nactors: {a: {}}\nsteps:\n  - parallel:\n"
            "      - a: call b\n      - a: dance\n",
            "f.yaml:6: steps[0].parallel[1].a: unknown command 'dance'",
        ),
        (
            "name: x\nactors: {parallel: {}}\nsteps: []\n",
            "actors.parallel: 'parallel' is a step keyword",
        ),
        ("name: x\nactors: {'null': {}}\nsteps: []\n", "actors.null: "),
        ("name: x\nactors: {a: {}}\nsteps: []\nname: y\n", "f.yaml:4: name: the key appears twice"),
        (
            "name: x\nactors: {a: {}}\nsteps:\n  - a: call b --as c1\noutcomes: {c1: WON / LOST}\n",
            "outcomes.c1: 'WON / LOST': 'WON' is no caller state",
        ),
        ("name: x\nactors: {a: {}}\nsteps:\n  - a: quit\n", "quit: use logout"),
        ("", "f.yaml:1: the file is empty"),
    ],
)
def test_each_problem_names_file_line_and_key_path(text: str, expected: str) -> None:
    found = problems(text)
    assert any(expected in p for p in found), found


def test_server_steps_and_server_indexes_are_checked_against_the_server_option() -> None:
    text = "name: x\nactors:\n  a: {server: 2}\nsteps:\n  - server: restart\n"
    found = problems(text, servers=2)
    assert "f.yaml:3: actors.a.server: server 2 but 2 --server given (indexes 0 to 1)" in found
    assert (
        "f.yaml:5: steps[0].server: server steps need the embedded server: drop --server" in found
    )


def test_a_line_cut_to_a_server_is_checked_against_the_server_option() -> None:
    text = "name: x\nactors: {a: {}}\nsteps:\n  - a: net cut --to 2\n  - a: net cut --to 1\n"
    assert problems(text, servers=2) == [
        "f.yaml:4: steps[0].a: net cut --to 2 but 2 --server given (indexes 0 to 1)"
    ]
    (loaded,) = load_text(text, "f.yaml")  # (the embedded server: every index is that one)
    assert [step.line for step in loaded.steps] == ["net cut --to 2", "net cut --to 1"]


def test_every_problem_of_every_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\nactors: {x: {}}\nsteps:\n  - y: login\n")
    (tmp_path / "b.yml").write_text("name: b\nactors: {x: {}}\nsteps:\n  - x: fly\n")
    (tmp_path / "c.yaml").write_text("name: a\nactors: {x: {}}\nsteps: []\n")
    (tmp_path / "notes.txt").write_text("not a scenario")
    with pytest.raises(ScenarioError) as info:
        load_paths([tmp_path])
    text = "\n".join(info.value.problems)
    assert "a.yaml:4: steps[0].y: unknown actor 'y'" in text
    assert "b.yml:4: steps[0].x: unknown command 'fly'" in text
    with pytest.raises(ScenarioError) as info:
        load_paths([tmp_path / "c.yaml", tmp_path / "c.yaml", tmp_path / "missing.yaml"])
    assert any("no such file" in p for p in info.value.problems)


def test_two_scenarios_with_one_name_are_an_error(tmp_path: Path) -> None:
    for n in "ab":
        (tmp_path / f"{n}.yaml").write_text("name: same\nactors: {x: {}}\nsteps: []\n")
    with pytest.raises(ScenarioError) as info:
        load_paths([tmp_path])
    assert "is also the name of the scenario at" in info.value.problems[0]
