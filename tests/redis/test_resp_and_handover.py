"""The hub's own RESP client (wire format, URLs) and a session's hand-over state, without a
Redis server; the real-server behaviour is in the other files here."""

from __future__ import annotations

import pytest

from rtmcall.engine.frames import Deliver, Text, encode
from rtmcall.server.config import ServerConfig
from rtmcall.server.redis.handover import restore, snapshot
from rtmcall.server.redis.resp import (
    RedisAddress,
    ReplyError,
    _Incomplete,
    bulk,
    encode_command,
    parse_reply,
)
from rtmcall.server.session import Session


def test_commands_are_arrays_of_bulk_strings() -> None:
    out = bytearray()
    encode_command(("XADD", b"s", 10, "é"), out)
    assert bytes(out) == b"*4\r\n$4\r\nXADD\r\n$1\r\ns\r\n$2\r\n10\r\n$2\r\n\xc3\xa9\r\n"
    assert bulk(b"abc") == b"$3\r\nabc\r\n"
    with pytest.raises(TypeError):
        encode_command(("GET", None), bytearray())


def test_replies_of_every_kind_and_partial_ones() -> None:
    data = b"*3\r\n$2\r\nid\r\n*2\r\n:7\r\n$-1\r\n+OK\r\n-ERR nope\r\n*-1\r\n"
    value, pos = parse_reply(data, 0)
    assert value == [b"id", [7, None], b"OK"]
    err, pos = parse_reply(data, pos)
    assert isinstance(err, ReplyError) and str(err) == "ERR nope"
    assert parse_reply(data, pos) == (None, len(data))
    for cut in range(1, len(b"*2\r\n$3\r\nabc\r\n:1\r\n")):
        with pytest.raises((_Incomplete, IndexError)):
            parse_reply(b"*2\r\n$3\r\nabc\r\n:1\r\n"[:cut], 0)
    with pytest.raises(ConnectionError):
        parse_reply(b"?what\r\n", 0)


def test_redis_urls() -> None:
    a = RedisAddress.from_url("redis://u%40x:p%3Aw@db.example:6380/3")
    assert (a.host, a.port, a.db, a.username, a.password, a.tls) == (
        "db.example", 6380, 3, "u@x", "p:w", False,
    )  # fmt: skip
    assert RedisAddress.from_url("rediss://:secret@h").tls
    assert RedisAddress.from_url("redis://h").port == 6379
    for bad in ("http://h", "redis://h/x", "redis://h:port"):
        with pytest.raises(ValueError):
            RedisAddress.from_url(bad)


def _deliver(session: Session, text: str) -> None:
    session.push_message(encode(Deliver(sender="alice", msg=Text(text=text))))


class _Link:
    def finish(self) -> None: ...
    def cut(self, why: str) -> None: ...
    def probe(self) -> None: ...


def test_a_session_s_state_survives_the_hand_over() -> None:
    config = ServerConfig()
    old = Session("bob", config)
    old.attach(_Link())
    for i in range(3):
        _deliver(old, f"m{i}")
    for _ in range(3):
        old.pop()  # the writer sent them; the client acknowledges only m0 (below)
    old.ack(1)
    old.remember_answer(7, b'{"t":"result","rid":7}')
    old.subscriptions.update({"alice", "carol"})
    old.detach()
    _deliver(old, "m3")  # kept for the resume
    old.push(b'{"t":"presence","states":{"alice":0}}')
    observed = [{"id": "inv1", "phase": "ringing", "content": "tab\there"}]
    data = snapshot(old, observed)
    assert b"\n" not in data and b"\t" not in data

    new, came = restore(data, config)
    assert came == observed  # (the caller's invitations: the observer's to read)
    assert (new.user, new.id, new.seq, new.last_rid) == ("bob", old.id, 4, old.last_rid)
    assert new.subscriptions == {"alice", "carol"}
    new.attach(_Link())
    assert new.answered_before(7) == b'{"t":"result","rid":7}'  # a repeat is answered
    new.replay(1)
    texts = [f for f in new.outbox]
    # Unacknowledged m1, m2, m3 in order (once each), then what else was queued.
    assert [t.split(b'"text":"')[1][:2] for t in texts[:3]] == [b"m1", b"m2", b"m3"]
    assert texts[3] == b'{"t":"presence","states":{"alice":0}}'
    assert len(texts) == 4
    # Numbering goes on where it was.
    _deliver(new, "m4")
    assert new.outbox[-1].startswith(b'{"seq":5,')
