"""Every shipped scenario (the demo's, examples/scenarios and examples/nodes) passes on the
MockClock, and the faults they use do what they say on real sockets."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from rtmcall.cli.demo.run import DEMO_DIR
from rtmcall.scenario.load import load_paths
from rtmcall.scenario.runner import ScenarioRun

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"
#: Written for two nodes (tests/redis/test_scenario_nodes.py plays them so); with the
#: embedded server every ``--server`` index is that one, and they pass there too.
NODES = Path(__file__).resolve().parents[2] / "examples" / "nodes"
SCENARIOS = load_paths([EXAMPLES, NODES, DEMO_DIR])


def test_there_are_at_least_eight_examples_beyond_the_demo() -> None:
    assert len(load_paths([EXAMPLES])) >= 8


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_shipped_scenario_passes(scenario, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    with trio.fail_after(600):
        result = await ScenarioRun(scenario).play()
    assert result.ok, result.failure
    for name, wanted in scenario.outcomes.items():
        assert result.outcomes[name] in wanted
