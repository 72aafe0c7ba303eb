"""API misuse returns the right InvitationApiCallError and changes nothing."""

from __future__ import annotations

import copy

import pytest

from rtmcall.engine import CallEngine, InvitationApiCallError
from rtmcall.engine.codes import (
    LOCAL_TERMINAL,
    REMOTE_TERMINAL,
    LocalInvitationState,
    RemoteInvitationState,
)
from rtmcall.engine.events import ApiCallError
from rtmcall.engine.invitation import (
    CALLEE_STATE,
    CALLEE_TRANSITIONS,
    CALLER_CANCELING,
    CALLER_STATE,
    CALLER_TRANSITIONS,
    CalleePhase,
    CallerPhase,
)

from .network import Network

API = InvitationApiCallError


def snapshot(engine: CallEngine) -> tuple:
    return (
        {k: (v.phase, v.error, v.response, frozenset(v.timers)) for k, v in engine.local.items()},
        {k: (v.phase, v.error, v.response, frozenset(v.timers)) for k, v in engine.remote.items()},
    )


def refused(engine: CallEngine, code: API, call, *args) -> ApiCallError:
    before = snapshot(engine)
    with pytest.raises(ApiCallError) as info:
        call(*args)
    assert info.value.code is code
    assert snapshot(engine) == before
    return info.value


def test_cancel_before_send_is_not_started(net: Network) -> None:
    a = net.nodes["alice"].engine
    inv = a.create_local_invitation("bob")
    err = refused(a, API.NOT_STARTED, a.cancel, inv)
    assert "cancel" in str(err) and "IDLE" in str(err) and inv.id in str(err)


def test_send_twice_is_already_sent(net: Network) -> None:
    a = net.nodes["alice"].engine
    inv = a.create_local_invitation("bob")
    net.call("alice", "send", inv)
    refused(a, API.ALREADY_SENT, a.send, inv)
    net.pump()
    refused(a, API.ALREADY_SENT, a.send, inv)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"callee": ""},
        {"callee": "null"},
        {"callee": " bob"},
        {"callee": "bob "},
        {"callee": "b" * 65},
        {"callee": "bö"},
        {"callee": "bob/x"},
        {"callee": "alice"},  # yourself
        {"callee": "bob", "content": "x" * (8 * 1024 + 1)},
        {"callee": "bob", "content": "é" * 4097},  # 8194 bytes
        {"callee": "bob", "channel_id": "c" * 65},
        {"callee": "bob", "channel_id": "é" * 33},
        {"callee": "bob", "lifetime": 0},
        {"callee": "bob", "lifetime": -1},
        {"callee": "bob", "lifetime": 86401},
    ],
)
def test_bad_arguments_are_invalid_argument(net: Network, kwargs: dict) -> None:
    a = net.nodes["alice"].engine
    before = copy.copy(a.local)
    with pytest.raises(ApiCallError) as info:
        a.create_local_invitation(**kwargs)
    assert info.value.code is API.INVALID_ARGUMENT
    assert a.local == before


def test_limits_are_inclusive(net: Network) -> None:
    a = net.nodes["alice"].engine
    inv = a.create_local_invitation(
        "b" * 64, content="é" * 4096, channel_id="c" * 64, lifetime=86400
    )
    assert len(inv.content.encode()) == 8192


def test_response_too_long_is_invalid_argument(net: Network) -> None:
    a, b = net.nodes["alice"].engine, net.nodes["bob"].engine
    inv = a.create_local_invitation("bob")
    net.call("alice", "send", inv)
    net.pump()
    refused(b, API.INVALID_ARGUMENT, b.accept, inv.id, "x" * 8193)
    refused(b, API.INVALID_ARGUMENT, b.refuse, inv.id, "x" * 8193)


def test_unknown_ids_are_invalid_argument(net: Network) -> None:
    a, b = net.nodes["alice"].engine, net.nodes["bob"].engine
    refused(a, API.INVALID_ARGUMENT, a.send, "nope")
    refused(a, API.INVALID_ARGUMENT, a.cancel, "nope")
    refused(b, API.INVALID_ARGUMENT, b.accept, "nope")
    refused(b, API.INVALID_ARGUMENT, b.refuse, "nope")


def test_api_codes_keep_agoras_numbers() -> None:
    assert [c.value for c in API] == [0, 1, 2, 3, 4, 5]
    assert [c.name for c in API] == [
        "OK",
        "INVALID_ARGUMENT",
        "NOT_STARTED",
        "ALREADY_END",
        "ALREADY_ACCEPT",
        "ALREADY_SENT",
    ]


# --- every API call in every state (SPEC §2 "API misuse"), from the engine's own enums ---
#
# How to bring one invitation (alice calls bob) into each phase, by driving the engines as
# an application would. The test below fails if a phase is added without a way here.


def _sent(net: Network) -> str:
    inv = net.nodes["alice"].engine.create_local_invitation("bob")
    net.call("alice", "send", inv)
    return inv.id


def _ringing(net: Network) -> str:
    inv_id = _sent(net)
    net.pump()
    return inv_id


def _then(first, *steps):
    def reach(net: Network) -> str:
        inv_id = first(net)
        for user, method in steps:
            if method == "pump":
                net.pump()
            elif method.startswith("fire "):
                net.fire(user, method.removeprefix("fire "))
            else:
                net.call(user, method, inv_id)
        return inv_id

    return reach


def _idle(net: Network) -> str:
    return net.nodes["alice"].engine.create_local_invitation("bob").id


REACH_CALLER = {
    CallerPhase.IDLE: _idle,
    CallerPhase.SENT: _sent,
    CallerPhase.RINGING: _ringing,
    CallerPhase.CANCELING_SENT: _then(_sent, ("alice", "cancel")),
    CallerPhase.CANCELING_RINGING: _then(_ringing, ("alice", "cancel")),
    CallerPhase.ACCEPTED: _then(_ringing, ("bob", "accept"), ("", "pump")),
    CallerPhase.REFUSED: _then(_ringing, ("bob", "refuse"), ("", "pump")),
    CallerPhase.CANCELED: _then(_ringing, ("alice", "cancel"), ("", "pump")),
    CallerPhase.FAILED: _then(_sent, ("alice", "fire no_ack")),
}
REACH_CALLEE = {
    CalleePhase.RINGING: _ringing,
    CalleePhase.ACCEPTING: _then(_ringing, ("bob", "accept")),
    CalleePhase.ACCEPTED: _then(_ringing, ("bob", "accept"), ("", "pump")),
    CalleePhase.REFUSED: _then(_ringing, ("bob", "refuse"), ("", "pump")),
    CalleePhase.CANCELED: _then(_ringing, ("alice", "cancel"), ("", "pump")),
    CalleePhase.FAILED: _then(_ringing, ("bob", "fire lifetime"), ("", "pump")),
}

TOO_LONG = "x" * 8193


def expected_caller(call: str, phase: CallerPhase) -> API:
    """SPEC §2's rules, applied to the Agora state the phase shows."""
    state = CALLER_STATE[phase]
    # Cancel already on its way: the caller's lifecycle is over (nothing it calls can
    # change the end any more) — the engine's choice where the SPEC is silent.
    ended = state in LOCAL_TERMINAL or phase in CALLER_CANCELING
    if call in ("accept", "refuse"):
        return API.INVALID_ARGUMENT  # only the callee accepts or refuses
    if call == "send":
        if state is LocalInvitationState.IDLE:
            return API.OK
        return API.ALREADY_END if ended else API.ALREADY_SENT
    if state is LocalInvitationState.IDLE:
        return API.NOT_STARTED  # cancel before send
    return API.ALREADY_END if ended else API.OK


def expected_callee(call: str, phase: CalleePhase, response: str) -> API:
    state = CALLEE_STATE[phase]
    if call in ("send", "cancel"):
        return API.INVALID_ARGUMENT  # only the caller sends or cancels
    if len(response.encode()) > 8192:
        return API.INVALID_ARGUMENT  # bad arguments first, in any state
    if state in REMOTE_TERMINAL:
        return API.ALREADY_END  # an accepted call included: the lifecycle ended
    if state is RemoteInvitationState.ACCEPT_SENT_TO_LOCAL:
        return API.ALREADY_ACCEPT
    return API.OK


CALLS = ("send", "cancel", "accept", "refuse")
#: create_local_invitation's arguments beside an invitation in each phase: a bad one is
#: INVALID_ARGUMENT whatever else exists (SPEC §2 "Limits"), a good one a new IDLE one.
CREATE_ARGS = {
    "good": {"callee": "bob", "content": "é" * 4096, "channel_id": "c" * 64, "lifetime": 86400},
    "bad callee": {"callee": "bob/x"},
    "yourself": {"callee": "alice"},
    "content": {"callee": "bob", "content": "x" * 8193},
    "channel": {"callee": "bob", "channel_id": "c" * 65},
    "lifetime": {"callee": "bob", "lifetime": 0},
}
CASES = (
    [("caller", p.name, call, "") for p in CallerPhase for call in CALLS]
    + [("caller", p.name, "create", args) for p in CallerPhase for args in CREATE_ARGS]
    + [
        ("callee", p.name, call, response)
        for p in CalleePhase
        for call in CALLS
        for response in ("", TOO_LONG)
        if response == "" or call in ("accept", "refuse")
    ]
)


def test_every_phase_can_be_reached() -> None:
    assert set(REACH_CALLER) == set(CallerPhase)
    assert set(REACH_CALLEE) == set(CalleePhase)
    for phase, reach in REACH_CALLER.items():
        net = Network()
        net.add("alice"), net.add("bob")
        assert net.nodes["alice"].engine.local[reach(net)].phase is phase
    for phase, reach in REACH_CALLEE.items():
        net = Network()
        net.add("alice"), net.add("bob")
        assert net.nodes["bob"].engine.remote[reach(net)].phase is phase


@pytest.mark.parametrize(("side", "phase_name", "call", "argument"), CASES)
def test_every_call_in_every_state(
    net: Network, side: str, phase_name: str, call: str, argument: str
) -> None:
    """One API call on an invitation in one phase. ``argument``: the response for accept
    and refuse, the CREATE_ARGS entry for create."""
    if call == "create":
        engine = net.nodes["alice"].engine
        REACH_CALLER[CallerPhase[phase_name]](net)
        kwargs = CREATE_ARGS[argument]
        if argument == "good":
            assert engine.create_local_invitation(**kwargs).state is LocalInvitationState.IDLE
            return
        err = refused(
            engine, API.INVALID_ARGUMENT, lambda: engine.create_local_invitation(**kwargs)
        )
        assert err.call == "create_local_invitation" and err.problem
        return
    if side == "caller":
        phase = CallerPhase[phase_name]
        inv_id = REACH_CALLER[phase](net)
        engine = net.nodes["alice"].engine
        expected = expected_caller(call, phase)
        table, transitions, state = engine.local, CALLER_TRANSITIONS, CALLER_STATE[phase]
    else:
        phase = CalleePhase[phase_name]
        inv_id = REACH_CALLEE[phase](net)
        engine = net.nodes["bob"].engine
        expected = expected_callee(call, phase, argument)
        table, transitions, state = engine.remote, CALLEE_TRANSITIONS, CALLEE_STATE[phase]
    args = (inv_id, argument) if call in ("accept", "refuse") else (inv_id,)
    if expected is API.OK:
        getattr(engine, call)(*args)
        assert table[inv_id].phase is transitions[phase][call]
        return
    err = refused(engine, expected, getattr(engine, call), *args)
    assert err.call == call and err.invitation_id == inv_id
    if expected is not API.INVALID_ARGUMENT:
        # The precise message names the call, the invitation and its state.
        assert err.state is state
        assert f"{call} cannot be done on invitation {inv_id} in state {state.name}" in str(err)
    else:
        assert err.problem
