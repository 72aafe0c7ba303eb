"""API misuse returns the right InvitationApiCallError and changes nothing."""

from __future__ import annotations

import copy

import pytest

from rtmcall.engine import CallEngine, InvitationApiCallError
from rtmcall.engine.events import ApiCallError

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


@pytest.fixture
def net() -> Network:
    n = Network()
    n.add("alice")
    n.add("bob")
    return n


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


def test_accept_twice_is_already_accept(net: Network) -> None:
    a, b = net.nodes["alice"].engine, net.nodes["bob"].engine
    inv = a.create_local_invitation("bob")
    net.call("alice", "send", inv)
    net.pump()
    net.call("bob", "accept", inv.id)
    refused(b, API.ALREADY_ACCEPT, b.accept, inv.id)
    refused(b, API.ALREADY_ACCEPT, b.refuse, inv.id)
    net.pump()
    refused(b, API.ALREADY_ACCEPT, b.accept, inv.id)


@pytest.mark.parametrize("ending", ["refuse", "cancel", "expire"])
def test_everything_after_the_end_is_already_end(net: Network, ending: str) -> None:
    a, b = net.nodes["alice"].engine, net.nodes["bob"].engine
    inv = a.create_local_invitation("bob")
    net.call("alice", "send", inv)
    net.pump()
    if ending == "refuse":
        net.call("bob", "refuse", inv.id)
    elif ending == "cancel":
        net.call("alice", "cancel", inv)
    else:
        net.fire("bob", "lifetime")
    net.pump()
    assert inv.terminal and b.remote[inv.id].terminal
    refused(a, API.ALREADY_END, a.send, inv)
    refused(a, API.ALREADY_END, a.cancel, inv)
    refused(b, API.ALREADY_END, b.accept, inv.id)
    refused(b, API.ALREADY_END, b.refuse, inv.id)


def test_cancel_twice_is_already_end(net: Network) -> None:
    a = net.nodes["alice"].engine
    inv = a.create_local_invitation("bob")
    net.call("alice", "send", inv)
    net.call("alice", "cancel", inv)
    refused(a, API.ALREADY_END, a.cancel, inv)


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
