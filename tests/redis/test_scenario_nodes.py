"""``rtmcall scenario`` against two or three ``rtmcall server --redis`` nodes: the actors are
spread over the ``--server`` URLs, so every invitation crosses nodes; a line moved to another
node resumes there; actors whose node is killed fail over to another one, and what rang or
talked across it ends on the others."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .redisproc import RedisProcess
from .test_cli_nodes import start_node

RTMCALL = [sys.executable, "-m", "rtmcall.cli"]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "nodes"


def play(path: Path, urls: list[str]) -> subprocess.CompletedProcess[str]:
    """``rtmcall scenario PATH`` against the nodes at ``urls``; it must pass."""
    servers = [arg for url in urls for arg in ("--server", url)]
    done = subprocess.run(
        [*RTMCALL, "scenario", str(path), *servers], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def play_on_two_nodes(redis: RedisProcess, name: str, prefix: str) -> str:
    """``examples/nodes/NAME`` against two fresh node processes; its output."""
    nodes = [start_node(redis.url, f"{prefix}{i}") for i in range(2)]
    try:
        return play(EXAMPLES / name, [url for _, url in nodes]).stdout
    finally:
        for proc, _ in nodes:
            proc.terminate()
            proc.wait(10)


def test_a_scenario_spread_over_two_redis_nodes(shared_redis: RedisProcess) -> None:
    assert "PASS calls across two nodes" in play_on_two_nodes(
        shared_redis, "across-nodes.yaml", "sc"
    )


def test_a_last_word_then_a_logout_are_heard_in_that_order_across_fresh_nodes(
    shared_redis: RedisProcess,
) -> None:
    """Fresh nodes: the refusal is the first thing bob's node sends alice's (it learns
    how to reach it first) and his logout follows at once; the caller's hang-up and
    logout the same the other way (tests/redis/test_scale_out.py holds the link or the
    lookup back to make the race certain)."""
    out = play_on_two_nodes(shared_redis, "last-word-then-logout.yaml", "lw")
    assert "all 2 passed" in out


def test_a_line_cut_to_another_node_resumes_there(shared_redis: RedisProcess) -> None:
    """``net cut --to 1``: the client reconnects through node 1, which takes the session
    over from node 0 with its ringing invitation (a fresh login would have ended it)."""
    nodes = [start_node(shared_redis.url, f"mv{i}", quiet=False) for i in range(2)]
    try:
        play(EXAMPLES / "resume-on-another-node.yaml", [url for _, url in nodes])
    finally:
        for proc, _ in nodes:
            proc.terminate()
    logs = [proc.communicate(timeout=10)[1] for proc, _ in nodes]
    assert "of 'bob' handed over to node mv1" in logs[0]
    assert "of 'bob' handed over from node mv0" in logs[1]


KILLED = """\
name: bob's node is killed while his phone rings
config: {no_response_timeout: 3, lifetime: 6, confirm_timeout: 2}
actors: {alice: {}, bob: {}}  # alice on node 0, bob on node 1
steps:
  - alice: call bob --as c1
  - bob: expect RemoteInvitationReceived c1
  - alice: expect LocalInvitationReceivedByPeer c1
  - sleep: 3  # node 1 is killed now
  - alice: call bob --as c2
  - bob: expect RemoteInvitationReceived c2 --within 10
  - bob: accept c2
  - alice: expect LocalInvitationAccepted c2
outcomes: {c1: FAILURE(PEER_OFFLINE) / FAILURE(PEER_OFFLINE), c2: ACCEPTED_BY_REMOTE / ACCEPTED}
"""


def _play_and_kill(
    redis_url: str, tmp_path: Path, text: str, count: int, after_step: str, victim: int
) -> None:
    """Play ``text`` over ``count`` fresh nodes and SIGKILL node ``victim`` once step
    ``after_step`` passed; the scenario (its expectations and outcomes) must pass."""
    nodes = [start_node(redis_url, f"kl{i}") for i in range(count)]
    try:
        path = tmp_path / "killed.yaml"
        path.write_text(text)
        servers = [arg for _, url in nodes for arg in ("--server", url)]
        run = subprocess.Popen(
            [*RTMCALL, "scenario", str(path), "--json", *servers],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert run.stdout is not None
        seen = []
        for line in run.stdout:
            seen.append(json.loads(line))
            if seen[-1].get("step") == after_step:
                assert seen[-1]["ok"], seen
                nodes[victim][0].kill()
                break
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, out + err
        report = json.loads(out.splitlines()[-2])
        assert report["type"] == "scenario" and report["ok"], report
    finally:
        for proc, _ in nodes:
            proc.kill()
            proc.wait(10)


def test_an_actor_whose_node_is_killed_fails_over_to_the_other_node(
    shared_redis: RedisProcess, tmp_path: Path
) -> None:
    """SIGKILL bob's node while his phone rings: his line fails over to node 0 (as behind a
    load balancer), he logs in afresh there (his session died with the node), the ringing
    invitation ends alike on both sides, and the next call reaches him."""
    _play_and_kill(shared_redis.url, tmp_path, KILLED, count=2, after_step="3", victim=1)


CALLERS_KILLED = """name: the node of a ringing caller and of a call is killed
config: {no_response_timeout: 3, lifetime: 20, confirm_timeout: 2}
actors: {alice: {server: 1}, dave: {server: 1}, bob: {server: 0}, carol: {server: 2}}
steps:
  - alice: call bob --as c1
  - bob: expect RemoteInvitationReceived c1
  - dave: call carol --as c2
  - carol: expect RemoteInvitationReceived c2
  - carol: accept c2
  - dave: expect CallStarted c2
  - carol: expect CallStarted c2  # (dave's confirm is through)
  - sleep: 3  # node 1 is killed now
  - bob: expect RemoteInvitationFailure c1 error=PEER_OFFLINE --within 15
  - carol: expect CallEnded c2 --within 15
  - bob: call alice --as c3
  - alice: expect RemoteInvitationReceived c3 --within 10
  - alice: accept c3
  - bob: expect LocalInvitationAccepted c3
  - carol: call dave --as c4
  - dave: expect RemoteInvitationReceived c4 --within 10
  - dave: accept c4
  - carol: expect LocalInvitationAccepted c4
outcomes:
  c1: FAILURE(NOT_LOGGEDIN) / FAILURE(PEER_OFFLINE)
  c2: ACCEPTED_BY_REMOTE / ACCEPTED
  c3: ACCEPTED_BY_REMOTE / ACCEPTED
  c4: ACCEPTED_BY_REMOTE / ACCEPTED
"""


def test_a_killed_node_s_ringing_caller_and_call_end_on_the_other_nodes(
    shared_redis: RedisProcess, tmp_path: Path
) -> None:
    """Three nodes; SIGKILL the one that holds a ringing caller (alice, calling bob on node
    0) and one end of a call (dave, talking to carol on node 2): bob's phone stops ringing
    (PEER_OFFLINE), carol's call ends, and both alice and dave, logged in afresh on a
    surviving node, can be called there."""
    _play_and_kill(shared_redis.url, tmp_path, CALLERS_KILLED, count=3, after_step="7", victim=1)


CONFIRM_LOST = """name: the caller's node is killed between the accept and its confirm
config: {no_response_timeout: 3, lifetime: 20, confirm_timeout: 15}
actors: {alice: {server: 1}, bob: {server: 0}}
steps:
  - alice: call bob --as c1
  - bob: expect RemoteInvitationReceived c1
  - alice: net delay 1500  # alice's line is slow: her confirm waits in it
  - bob: accept c1
  - alice: expect LocalInvitationAccepted c1 --within 5
  - sleep: 0.5  # node 1 is killed now, with alice's confirm not yet through
  - alice: net delay 0
  - alice: expect CallEnded c1 reason=SESSION_LOST --within 10
  - bob: expect RemoteInvitationAccepted c1 --within 15
  - bob: expect CallEnded c1 reason=HANGUP_REMOTE --within 5
outcomes: {c1: ACCEPTED_BY_REMOTE / ACCEPTED}
"""


def test_a_confirm_lost_with_the_callers_node_still_ends_both_accepted(
    shared_redis: RedisProcess, tmp_path: Path
) -> None:
    """SIGKILL alice's node after she saw bob's accept, before her Confirm left it (the
    window the three-way handshake leaves): bob's accept waits out its confirm window
    instead of failing when alice goes OFFLINE, goes again when she is back (logged in
    afresh on node 0), and she answers it with her hang-up (her call ended with her
    session), which implies the confirm: ACCEPTED on both sides, no call left on."""
    _play_and_kill(shared_redis.url, tmp_path, CONFIRM_LOST, count=2, after_step="5", victim=1)


QUIET_NODE_KILLED = """name: a node no other node has sent anything is killed
config: {no_response_timeout: 3, lifetime: 10, confirm_timeout: 2}
actors: {alice: {server: 0}, dan: {server: 1}}
steps:
  - dan: kill  # his app dies: node 1 keeps his session for the resume window
  - sleep: 0.5  # node 1 is killed now
  - sleep: 1
  - alice: online dan
  - alice: expect PeersOnlineStatus peers.dan=OFFLINE
  - alice: call dan --as c1
  - alice: expect LocalInvitationFailure c1 error=PEER_OFFLINE --within 5
outcomes: {c1: FAILURE(PEER_OFFLINE) / —}
"""


def test_a_killed_node_that_nobody_had_sent_to_is_found_gone_at_once(
    shared_redis: RedisProcess, tmp_path: Path
) -> None:
    """Nothing crossed between the nodes before node 1 was killed, yet node 0 knows within
    a second that its users are gone (it linked to node 1 when it first heard of it, and
    the broken link found the port refusing): dan is OFFLINE and a call to him ends
    PEER_OFFLINE, not ONLINE and PEER_NO_RESPONSE until his registration expires (30 s)."""
    _play_and_kill(shared_redis.url, tmp_path, QUIET_NODE_KILLED, count=2, after_step="2", victim=1)
