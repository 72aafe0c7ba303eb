"""Scenario files that are wrong: every problem is one line naming the file, the line and
the key path, and nothing is returned (so nothing runs)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from textwrap import dedent

import pytest

from rtmcall.scenario.load import ScenarioError, _Doc, load_paths, load_text

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


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Fails (rather than hangs) when the block takes longer: the loader once looped
    forever on a path it could not place."""

    def fail(signum: int, frame: object) -> None:
        raise TimeoutError(f"still loading after {seconds} s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def problems(text: str, **kw: object) -> list[str]:
    with within(10), pytest.raises(ScenarioError) as info:
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
            "f.yaml:4: colour: unknown key 'colour' (keys: name, actors, steps, description, "
            "timeout, config, vars, outcomes)",
        ),
        ("actors: {a: {}}\nsteps: []\n", "missing required field `name`"),
        (
            "name: x\ntimeout: soon\nactors: {a: {}}\nsteps: []\n",
            "f.yaml:2: timeout: Expected `float`, got `str`",
        ),
        (
            "name: x\nactors:\n  a: {sever: 1}\nsteps: []\n",
            "f.yaml:3: actors.a.sever: unknown key 'sever' (did you mean 'server'? keys: "
            "user, login, ack, server)",
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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Each named the key path only as msgspec's `vars[...]` / `outcomes[...]`, and the
        # loader spun on it for ever (100 % CPU, deaf to Ctrl-C).
        (
            "name: x\nactors: {a: {}}\nsteps:\n  - a: call b --as c1\noutcomes: {c1: 5}\n",
            "f.yaml:5: outcomes.c1: an outcome is 'CALLER_STATE / CALLEE_STATE' or a list of "
            "them, not a number",
        ),
        (
            "name: x\nactors: {a: {}}\nsteps:\n  - a: call b --as c1\n"
            "outcomes:\n  c1:\n    - CANCELED / CANCELED\n    - 7\n",
            "f.yaml:8: outcomes.c1[1]: an outcome is 'CALLER_STATE / CALLEE_STATE', not a number",
        ),
        (
            "name: x\nvars: {peers: [a, b]}\nactors: {a: {}}\nsteps: []\n",
            "f.yaml:2: vars.peers: a variable is text, a number or true/false, not a list",
        ),
        (
            "name: x\nvars:\n  ok: 1\n  topic:\nactors: {a: {}}\nsteps: []\n",
            "f.yaml:4: vars.topic: a variable is text, a number or true/false, not null "
            '(nothing after the colon: write topic: "" for empty text)',
        ),
        (
            "- name: x\n  vars: {m: {k: v}}\n  actors: {a: {}}\n  steps: []\n",
            "f.yaml:2: [0].vars.m: a variable is text, a number or true/false, not a mapping",
        ),
    ],
)
def test_a_wrong_value_in_vars_or_outcomes_is_one_line_naming_its_key(
    text: str, expected: str
) -> None:
    assert problems(text) == [expected]


@pytest.mark.parametrize(
    "path",
    [
        "vars[...]",
        "outcomes[...][1]",
        "vars.topic[...]",
        "[...]",
        "[0].vars[...]",
        "steps[x]",
        "steps[",
        "]",
        "...",
        ".",
        "vars.",
        "[0][1][2]",
        "nothing.here[3].at.all",
        "vars.a.b[c",
    ],
)
def test_any_path_gets_a_line_and_the_search_ends(path: str) -> None:
    doc = _Doc("f.yaml", "name: x\nvars:\n  topic: lunch\nsteps:\n  - a: login\n")
    with within(2):
        where = doc.where(path)
    assert where.path == path and where.line >= 1
    with within(2):
        assert doc.where("vars[...]").line == 2  # the nearest enclosing key that has one
        assert doc.where("vars.topic.x").line == 3
        assert doc.where("steps[0].a[...]").line == 5


def test_an_unknown_key_is_said_at_its_own_line() -> None:
    text = """\
        name: unknown key lines
        actors:
          alice: {}
          bob:
            user: bob
            ack: false
        config:
          lifetime: 3
          confirm_timeout: 1
        steps:
          - alice: call bob --as c1
        outcomes:
          c1: CANCELED / CANCELED
        """
    keys = "keys: name, actors, steps, description, timeout, config, vars, outcomes"
    assert problems(text.replace("outcomes:", "outcome:")) == [
        f"f.yaml:12: outcome: unknown key 'outcome' (did you mean 'outcomes'? {keys})",
    ]
    assert problems(text.replace("confirm_timeout:", "confirm:")) == [
        "f.yaml:9: config.confirm: unknown key 'confirm' (did you mean 'confirm_timeout'? "
        "keys: no_response_timeout, lifetime, confirm_timeout)",
    ]
    assert problems(text.replace("ack:", "acks:")) == [
        "f.yaml:6: actors.bob.acks: unknown key 'acks' (did you mean 'ack'? "
        "keys: user, login, ack, server)",
    ]
    # In the second scenario of a file, at its own line too.
    listed = (
        "- name: a\n  actors: {x: {}}\n  steps: []\n- name: b\n  actors: {x: {}}\n  stepz: []\n"
    )
    assert problems(listed) == [
        f"f.yaml:6: [1].stepz: unknown key 'stepz' (did you mean 'steps'? {keys})"
    ]


def test_a_bad_option_of_an_actor_brings_no_unknown_actor() -> None:
    # bob's options are wrong; his steps are still checked, and are no "unknown actor".
    found = problems(
        """\
        name: x
        actors:
          alice: {}
          bob: {server: "1"}
        steps:
          - alice: call bob --as c1
          - bob: accept c1
          - bob: dance
        """
    )
    assert found == [
        "f.yaml:4: actors.bob.server: Expected `int | null`, got `str`",
        "f.yaml:8: steps[2].bob: unknown command 'dance'; type help for the list",
    ]
    # Every actor wrong: the invitation named by one of them is still known to the others.
    found = problems(
        "name: x\nactors: {alice: {ack: maybe}, bob: {serv: 1}}\n"
        "steps:\n  - alice: call bob --as c1\n  - bob: accept c1\n"
    )
    assert found == [
        "f.yaml:2: actors.alice.ack: Expected `bool`, got `str`",
        "f.yaml:2: actors.bob.serv: unknown key 'serv' (did you mean 'server'? "
        "keys: user, login, ack, server)",
    ]


def test_an_invitation_name_given_twice_is_an_error_naming_both_steps() -> None:
    found = problems(
        """\
        name: x
        actors: {alice: {}, bob: {}}
        steps:
          - alice: call bob --as c1
          - parallel:
              - bob: call alice --as c2
              - alice: call bob --as c1
          - bob: accept c1
        """
    )
    assert found == [
        "f.yaml:7: steps[1].parallel[1].alice: --as c1: 'c1' already names the invitation "
        "of steps[0].alice (line 4); give each call its own name"
    ]
