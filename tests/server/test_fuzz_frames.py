"""Fuzz the frame decoder: whatever arrives, it raises FrameError or nothing else."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtmcall.engine.frames import FrameError, decode_client_frame
from rtmcall.server.replies import bad_frame_reply

TAGS = ["login", "send", "query", "sub", "unsub", "renew", "ping", "pong", "logout", "x"]
KINDS = ["invite", "ack", "accept", "confirm", "refuse", "cancel", "cancel_ack", "end", "text"]
KEYS = [
    "t",
    "k",
    "rid",
    "to",
    "msg",
    "user",
    "users",
    "token",
    "resume",
    "id",
    "content",
    "channel",
    "lifetime",
    "response",
    "reason",
    "text",
    "from",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=80)
    | st.sampled_from(TAGS + KINDS)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), children, max_size=6)
    ),
    max_leaves=10,
)
frames = st.fixed_dictionaries(
    {"t": st.sampled_from(TAGS)},
    optional={k: json_values for k in KEYS if k != "t"},
)


def check(data: bytes | str) -> None:
    try:
        decode_client_frame(data)
    except FrameError as exc:
        reply = bad_frame_reply(data, exc)  # the error path must not raise either
        assert reply.message


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    check(data)


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_arbitrary_text(data: str) -> None:
    check(data)


@settings(max_examples=250, suppress_health_check=[HealthCheck.too_slow])
@given(frames)
def test_json_shaped_frames(frame: dict[str, object]) -> None:
    check(json.dumps(frame))


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(frames, st.integers(min_value=0, max_value=200), st.binary(max_size=4))
def test_mangled_json(frame: dict[str, object], cut: int, junk: bytes) -> None:
    data = json.dumps(frame).encode()
    check(data[:cut] + junk + data[cut:])


@given(st.integers(min_value=1, max_value=200_000), st.sampled_from("[{"))
@settings(max_examples=30)
def test_deep_nesting(depth: int, opener: str) -> None:
    check(opener * depth)
    check('{"t":"send","rid":1,"to":"a","msg":' + "[" * depth)
