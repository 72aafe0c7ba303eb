"""Scenarios played for real: an embedded server on a free loopback port, one SDK client per
actor behind its own TCP fault proxy, over real WebSockets. The protocol windows pass on
trio's MockClock (``autojump_clock``), so Agora's 30/60/5 s defaults cost nothing."""

from __future__ import annotations

from textwrap import dedent

import pytest
import trio
from trio.testing import MockClock

from rtmcall.scenario.load import load_text
from rtmcall.scenario.runner import QuietObserver, ScenarioResult, ScenarioRun, StepResult


async def play(text: str, **kw: object) -> ScenarioResult:
    (scenario,) = load_text(dedent(text), "t.yaml")
    with trio.fail_after(600):
        return await ScenarioRun(scenario, **kw).play()  # type: ignore[arg-type]


async def test_the_specs_example_passes(autojump_clock: MockClock) -> None:
    r = await play(
        """
        name: cancel racing accept ends the same on both sides
        config: {no_response_timeout: 2, lifetime: 3, confirm_timeout: 1}
        actors: {alice: {}, bob: {}}
        steps:
          - alice: call bob --content "lunch?" --as c1
          - bob: expect RemoteInvitationReceived c1 content=lunch? --within 2
          - parallel:
              - alice: cancel c1
              - bob: accept c1 --response "on my way"
          - alice: expect-no LocalInvitationAccepted c1 --for 1
        """
    )
    assert r.ok, r.failure
    assert r.outcomes["c1"] == "CANCELED / CANCELED"
    assert [s.number for s in r.steps] == ["1", "2", "3.1", "3.2", "3", "4"] or [
        s.number for s in r.steps
    ] == ["1", "2", "3.2", "3.1", "3", "4"]


async def test_a_missing_event_fails_with_the_step_and_the_actors_last_events(
    autojump_clock: MockClock,
) -> None:
    r = await play(
        """
        name: refused, not accepted
        actors: {alice: {}, bob: {}}
        steps:
          - alice: call bob --as c1
          - bob: expect RemoteInvitationReceived c1
          - bob: refuse c1 --response busy
          - alice: expect LocalInvitationAccepted c1 --within 2
        """
    )
    assert not r.ok
    assert r.failure is not None and r.failure.startswith(
        "step 4 (alice: expect LocalInvitationAccepted c1 --within 2): none within 2 s; "
        "alice's last events: "
    )
    assert (
        "LocalInvitationRefused c1 (state=REFUSED_BY_REMOTE, reason=declined, response=busy)"
        in r.failure
    )
    assert r.failed_step == "4"


async def test_keys_are_compared_and_an_expect_takes_each_event_once(
    autojump_clock: MockClock,
) -> None:
    r = await play(
        """
        name: two calls, the second expect needs the second event
        actors: {alice: {}, bob: {}}
        steps:
          - alice: call bob --content one --as c1
          - alice: call bob --content two --as c2
          - bob: expect RemoteInvitationReceived caller=alice
          - bob: expect RemoteInvitationReceived caller=alice
          - bob: expect RemoteInvitationReceived caller=alice --within 1
        """
    )
    assert not r.ok and r.failure is not None
    assert r.failure.startswith("step 5 (bob: expect RemoteInvitationReceived caller=alice")


async def test_expect_no_fails_on_a_ghost(autojump_clock: MockClock) -> None:
    r = await play(
        """
        name: it does ring
        actors: {alice: {}, bob: {}}
        steps:
          - alice: call bob --as c1
          - bob: expect-no RemoteInvitationReceived c1 --for 2
        """
    )
    assert not r.ok and r.failure is not None
    assert "bob: expect-no RemoteInvitationReceived c1 --for 2" in r.failure
    assert "RemoteInvitationReceived c1" in r.failure.split("):", 1)[1]


async def test_an_api_call_error_nobody_expected_fails_the_scenario(
    autojump_clock: MockClock,
) -> None:
    text = """
        name: accept twice
        actors: {alice: {}, bob: {}}
        steps:
          - alice: call bob --as c1
          - bob: expect RemoteInvitationReceived c1
          - bob: accept c1
          - bob: accept c1
          - bob: expect RemoteInvitationAccepted c1
        """
    r = await play(text)
    assert not r.ok and r.failure is not None
    assert "at the end: bob had an unexpected ApiCallError c1" in r.failure
    r = await play(text + "  - bob: expect ApiCallError c1 command=accept\n")
    assert r.ok, r.failure


async def test_outcomes_are_checked(autojump_clock: MockClock) -> None:
    r = await play(
        """
        name: wrong outcome
        actors: {alice: {}}
        steps:
          - alice: call dave --as c1
        outcomes: {c1: ACCEPTED_BY_REMOTE / ACCEPTED}
        """
    )
    assert not r.ok and r.failure is not None
    assert (
        "invitation c1 ended FAILURE(PEER_OFFLINE) / —, expected ACCEPTED_BY_REMOTE / ACCEPTED"
        in r.failure
    )


@pytest.mark.parametrize(
    ("outcome", "ok"),
    [
        ("FAILURE(PEER_OFFLINE) / —", True),
        ("FAILURE(PEER_OFFLINE) / -", True),  # (a plain hyphen for "no view")
        ("FAILURE / —", True),  # a state without its error: any error
        ("FAILURE(PEER_NO_RESPONSE) / -", False),
        ("FAILURE / FAILURE", False),
        ("[CANCELED / —, FAILURE / -]", True),
    ],
)
async def test_outcomes_match_as_written(autojump_clock: MockClock, outcome: str, ok: bool) -> None:
    r = await play(
        f"""
        name: an outcome as a user writes it
        actors: {{alice: {{}}}}
        steps:
          - alice: call dave --as c1
        outcomes: {{c1: {outcome}}}
        """
    )
    assert r.ok is ok, r.failure


async def test_the_timeout_cuts_a_hanging_scenario_and_says_where_it_stood(
    autojump_clock: MockClock,
) -> None:
    r = await play(
        """
        name: waits forever
        timeout: 5
        actors: {alice: {}}
        steps:
          - alice: sleep 2
          - alice: wait --incoming
        """
    )
    assert not r.ok and r.failure is not None
    assert r.failure == "the scenario's timeout (5 s) ran out at step 2 (alice: wait --incoming)"
    # The step it cut off is the failed step, as a step that fails is.
    assert r.failed_step == "2"
    assert [(s.number, s.ok) for s in r.steps] == [("1", True), ("2", False)]
    assert r.steps[1].message == "cut off: the scenario's timeout (5 s) ran out"
    assert 2.9 < r.steps[1].elapsed < 3.1


async def test_a_timeout_in_a_parallel_block_fails_its_running_steps_then_the_block(
    autojump_clock: MockClock,
) -> None:
    r = await play(
        """
        name: waits forever in parallel
        timeout: 5
        actors: {alice: {}, bob: {}}
        steps:
          - parallel:
              - alice: sleep 1
              - bob: wait --incoming
              - sleep: 30
        """
    )
    assert not r.ok and r.failed_step == "1.2"
    assert [(s.number, s.ok) for s in r.steps] == [
        ("1.1", True),
        ("1.2", False),
        ("1.3", False),
        ("1", False),
    ]
    assert {s.message for s in r.steps[1:]} == {"cut off: the scenario's timeout (5 s) ran out"}


async def test_ctrl_c_fails_the_step_it_cut_off(autojump_clock: MockClock) -> None:
    (scenario,) = load_text(
        "name: long\nactors: {alice: {}}\nsteps:\n  - alice: sleep 1\n  - sleep: 20\n", "t.yaml"
    )
    run = ScenarioRun(scenario)
    ended = []

    class Seen(QuietObserver):
        def step_ended(self, run: ScenarioRun, result: StepResult) -> None:
            ended.append(result)

    run.observer = Seen()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run.play)
        await trio.sleep(5)
        run.interrupt()
    r = run.result
    assert r.interrupted and r.failure == "interrupted (Ctrl-C) at step 2 (sleep: 20)"
    assert r.failed_step == "2"
    assert [(s.number, s.ok, s.message) for s in ended] == [
        ("1", True, ""),
        ("2", False, "cut off: interrupted (Ctrl-C)"),
    ]


async def test_defaults_windows_the_end_waits_for_every_invitation_to_end(
    autojump_clock: MockClock,
) -> None:
    # Agora's default windows (30 s no-ACK): the runner waits them out, then checks.
    r = await play(
        """
        name: nobody home
        timeout: 100
        actors: {alice: {}, mute: {ack: false}}
        steps:
          - alice: call mute --as c1
        """
    )
    assert r.ok, r.failure
    assert r.outcomes["c1"] == "FAILURE(PEER_NO_RESPONSE) / —"
    assert 29 < r.duration < 40


async def test_login_false_and_a_late_login_rings(autojump_clock: MockClock) -> None:
    r = await play(
        """
        name: late
        config: {no_response_timeout: 5}
        actors: {alice: {}, frank: {login: false}}
        steps:
          - alice: call frank --as c1
          - frank: expect-no RemoteInvitationReceived --for 2
          - frank: login
          - frank: expect LoginSuccess
          - frank: expect RemoteInvitationReceived c1
          - frank: accept c1
        outcomes: {c1: ACCEPTED_BY_REMOTE / ACCEPTED}
        """
    )
    assert r.ok, r.failure


async def test_vars_run_and_repeat_index(autojump_clock: MockClock) -> None:
    (scenario,) = load_text(
        dedent(
            """
            name: vars
            config: {lifetime: 2}
            vars: {topic: lunch}
            actors: {alice: {}, bob: {}}
            steps:
              - alice: call bob --content "${topic} ${run} ${i}" --as c1
              - bob: expect RemoteInvitationReceived c1
            """
        ),
        "t.yaml",
    )
    run = ScenarioRun(scenario, run=3, runs=4)
    r = await run.play()
    assert r.ok, r.failure
    assert r.title == "vars [3/4]"
    received = [e.obj for e in r.events["bob"] if e.obj["event"] == "RemoteInvitationReceived"]
    assert received[0]["content"] == f"lunch {run.run_id} 3"


async def test_a_duplicate_login_kicks_the_first_device(autojump_clock: MockClock) -> None:
    r = await play(
        """
        name: second device
        actors: {phone: {user: bob}, tablet: {user: bob, login: false}, alice: {}}
        steps:
          - alice: call phone --as c1
          - phone: expect RemoteInvitationReceived c1
          - tablet: login
          - phone: expect ConnectionStateChanged state=ABORTED reason=REMOTE_LOGIN
          - phone: expect RemoteInvitationFailure c1
          - alice: expect LocalInvitationFailure c1 --within 70
        """
    )
    assert r.ok, r.failure


class _Phone:
    """Stands in for an actor's softphone: the end checks read only its invitations."""

    def __init__(self, *infos: object) -> None:
        self._infos = list(infos)
        self.ended = None

    def infos(self) -> list[object]:
        return self._infos


def test_two_ends_that_disagree_fail_the_end_checks() -> None:
    from rtmcall.engine.codes import (
        LocalInvitationError,
        LocalInvitationState,
        RemoteInvitationError,
        RemoteInvitationState,
    )
    from rtmcall.engine.events import LocalInvitationInfo, RemoteInvitationInfo
    from rtmcall.scenario.actor import ActorRun
    from rtmcall.scenario.runner import StepFailed

    (scenario,) = load_text(
        "name: x\nactors: {alice: {}, bob: {}}\nsteps:\n  - alice: call bob --as c1\n", "t.yaml"
    )
    run = ScenarioRun(scenario)
    caller = LocalInvitationInfo(
        "id1", "alice", "bob", "", "", "", LocalInvitationState.ACCEPTED_BY_REMOTE,
        LocalInvitationError.OK, None,
    )  # fmt: skip
    callee = RemoteInvitationInfo(
        "id1", "alice", "bob", "", "", "", RemoteInvitationState.FAILURE,
        RemoteInvitationError.ACCEPT_FAILURE, None,
    )  # fmt: skip
    for name, info in (("alice", caller), ("bob", callee)):
        actor = ActorRun(scenario.actors[name], None, None, None, 0.0)  # type: ignore[arg-type]
        actor.phone, actor.logged_in = _Phone(info), True  # type: ignore[assignment]
        run.actors[name] = actor
    run.ids, run.names = {"c1": "id1"}, {"id1": "c1"}
    with pytest.raises(StepFailed) as info:
        run._end_checks()
    assert str(info.value) == (
        "at the end: invitation c1: the two ends disagree: alice ACCEPTED_BY_REMOTE, "
        "bob FAILURE(ACCEPT_FAILURE)"
    )
    callee_ok = RemoteInvitationInfo(
        "id1", "alice", "bob", "", "", "", RemoteInvitationState.ACCEPTED,
        RemoteInvitationError.OK, None,
    )  # fmt: skip
    run.actors["bob"].phone = _Phone(callee_ok)  # type: ignore[assignment]
    run._end_checks()  # agreement: no problem
