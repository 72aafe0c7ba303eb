"""``rtmcall scenario`` against two ``rtmcall server --redis`` nodes: the actors are spread
over the ``--server`` URLs, so every invitation crosses nodes; a line moved to another node
resumes there; an actor whose node is killed fails over to the other one."""

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


def test_a_scenario_spread_over_two_redis_nodes(shared_redis: RedisProcess) -> None:
    nodes = [start_node(shared_redis.url, f"sc{i}") for i in range(2)]
    try:
        done = play(EXAMPLES / "across-nodes.yaml", [url for _, url in nodes])
        assert "PASS calls across two nodes" in done.stdout
    finally:
        for proc, _ in nodes:
            proc.terminate()
            proc.wait(10)


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


def test_an_actor_whose_node_is_killed_fails_over_to_the_other_node(
    shared_redis: RedisProcess, tmp_path: Path
) -> None:
    """SIGKILL bob's node while his phone rings: his line fails over to node 0 (as behind a
    load balancer), he logs in afresh there (his session died with the node), the ringing
    invitation ends alike on both sides, and the next call reaches him."""
    nodes = [start_node(shared_redis.url, f"kl{i}") for i in range(2)]
    try:
        path = tmp_path / "killed.yaml"
        path.write_text(KILLED)
        run = subprocess.Popen(
            [*RTMCALL, "scenario", str(path), "--json", "--server", nodes[0][1],
             "--server", nodes[1][1]],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert run.stdout is not None
        seen = []
        for line in run.stdout:
            seen.append(json.loads(line))
            if seen[-1].get("step") == "3":
                assert seen[-1]["ok"], seen
                nodes[1][0].kill()
                break
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, out + err
        report = json.loads(out.splitlines()[-2])
        assert report["type"] == "scenario" and report["ok"], report
    finally:
        for proc, _ in nodes:
            proc.kill()
            proc.wait(10)
