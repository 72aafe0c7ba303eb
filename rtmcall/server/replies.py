"""Answers to frames the server refuses, and the few frames it pre-encodes.

A refused frame always gets an answer the client can act on (SPEC §3: "answers every bad
frame with a clear error"): a Send that could be parsed far enough to know its ``rid``
gets a Result with INVALID_USERID or INVALID_MESSAGE, so the sender's pending request
ends; anything else gets ``Error(code="bad_frame", rid=...)`` with msgspec's description
of what is wrong (which names the offending path, like ``$.msg.id``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from rtmcall.engine.codes import PeerMessageError
from rtmcall.engine.frames import Bye, Error, FrameError, Result, ServerPing, ServerPong, encode

PONG = encode(ServerPong())
PING = encode(ServerPing())
BYE = encode(Bye())

#: Longest error message sent back; msgspec may quote the offending value.
MAX_MESSAGE_CHARS = 300
_MAX_RID = 2**53


class _Probe(msgspec.Struct):
    """The two fields worth recovering from a frame that failed strict decoding."""

    t: Any = None
    rid: Any = None


_probe_decoder = msgspec.json.Decoder(_Probe)


def _probe(data: str | bytes) -> tuple[object, int | None]:
    try:
        probe = _probe_decoder.decode(data)
    except Exception:  # malformed, too deep, not an object: nothing to recover
        return None, None
    rid = probe.rid
    if type(rid) is not int or not 0 <= rid <= _MAX_RID:
        rid = None
    return probe.t, rid


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def bad_frame_reply(data: str | bytes, exc: FrameError) -> Result | Error:
    """The answer to a frame :func:`decode_client_frame` refused with ``exc``."""
    kind, rid = _probe(data)
    message = _clip(f"bad frame: {exc}")
    if kind == "send" and rid is not None:
        code = (
            PeerMessageError.INVALID_USERID
            if "`$.to`" in str(exc)
            else PeerMessageError.INVALID_MESSAGE
        )
        return Result(rid=rid, code=int(code), message=message)
    return Error(code="bad_frame", message=message, rid=rid)
