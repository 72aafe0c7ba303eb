"""``rtmcall scenario`` against two ``rtmcall server --redis`` nodes: the actors are spread
over the ``--server`` URLs, so every invitation crosses nodes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .redisproc import RedisProcess
from .test_cli_nodes import start_node

RTMCALL = [sys.executable, "-m", "rtmcall.cli"]

ACROSS = """\
name: across two nodes
config: {no_response_timeout: 3, lifetime: 5, confirm_timeout: 2}
actors: {alice: {}, bob: {}, carol: {server: 1}}  # alice on node 0, bob and carol on 1
steps:
  - alice: call bob --content "from node 0" --as c1
  - bob: expect RemoteInvitationReceived c1 content="from node 0"
  - bob: accept c1 --response "node 1 here"
  - alice: expect LocalInvitationAccepted c1 response="node 1 here"
  - carol: call alice --as c2
  - alice: expect RemoteInvitationReceived c2
  - alice: refuse c2
  - carol: expect LocalInvitationRefused c2
outcomes: {c1: ACCEPTED_BY_REMOTE / ACCEPTED, c2: REFUSED_BY_REMOTE / REFUSED}
"""


def test_a_scenario_spread_over_two_redis_nodes(shared_redis: RedisProcess, tmp_path: Path) -> None:
    nodes = [start_node(shared_redis.url, f"sc{i}") for i in range(2)]
    try:
        path = tmp_path / "across.yaml"
        path.write_text(ACROSS)
        done = subprocess.run(
            [*RTMCALL, "scenario", str(path), "--server", nodes[0][1], "--server", nodes[1][1]],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "PASS across two nodes" in done.stdout
    finally:
        for proc, _ in nodes:
            proc.terminate()
            proc.wait(10)
