"""``expect`` matching: JSON scalars, actor names for user ids, dotted keys."""

from __future__ import annotations

from rtmcall.scenario.match import brief, matches

USERS = {"alice": "alice", "bob": "bob-2"}
EV = {
    "event": "LocalInvitationRefused",
    "id": "abc123ff",
    "caller": "alice",
    "callee": "bob-2",
    "state": "REFUSED_BY_REMOTE",
    "state_code": 4,
    "response": "on my way",
    "content": "123",
}


def m(*pairs: tuple[str, str], inv: str | None = "abc123ff", event: str = EV["event"]) -> bool:
    return matches(EV, event, inv, pairs, USERS)


def test_event_name_and_invitation_must_match() -> None:
    assert m()
    assert not m(event="LocalInvitationAccepted")
    assert not m(inv="other")
    assert m(inv=None)


def test_values_compare_as_json_scalars() -> None:
    assert m(("state_code", "4"))
    assert not m(("state_code", "5"))
    assert m(("state", "REFUSED_BY_REMOTE"), ("response", "on my way"))
    assert not m(("response", "on my"))
    assert m(("content", "123"))  # text that looks like a number still matches the text
    assert not m(("missing", "x"))


def test_an_actor_name_stands_for_its_user_id() -> None:
    assert m(("callee", "bob"))
    assert m(("callee", "bob-2"))
    assert not m(("callee", "alice"))


def test_dotted_keys_reach_into_objects() -> None:
    ev = {"event": "PeersOnlineStatus", "peers": {"bob-2": "ONLINE"}, "peer_codes": {"bob-2": 0}}
    assert matches(ev, "PeersOnlineStatus", None, [("peers.bob", "ONLINE")], USERS)
    assert matches(ev, "PeersOnlineStatus", None, [("peer_codes.bob-2", "0")], USERS)
    assert not matches(ev, "PeersOnlineStatus", None, [("peers.alice", "ONLINE")], USERS)


def test_booleans_are_not_numbers() -> None:
    ev = {"event": "X", "flag": True, "n": 1}
    assert matches(ev, "X", None, [("flag", "true")], {})
    assert not matches(ev, "X", None, [("flag", "1")], {})
    assert not matches(ev, "X", None, [("n", "true")], {})


def test_brief_names_the_invitation_by_its_name() -> None:
    text = brief(EV, {"abc123ff": "c1"})
    assert text.startswith("LocalInvitationRefused c1 (state=REFUSED_BY_REMOTE")
