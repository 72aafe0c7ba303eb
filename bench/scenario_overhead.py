"""What the scenario runner adds (issue 11 "Speed").

1. Per step: the same flow — alice calls bob, bob sees it ring, alice cancels, both see it
   end — 20 times, (A) driven by hand on the SDK, one client per user behind the same
   kind of fault proxy the runner uses, and (B) played by the runner as a scenario of 80
   steps. (B - A) / 80 is the runner's cost per step beyond the protocol's own waits.
   Samples alternate A B A B; medians are reported.
2. 100 callers ring one callee at once (as examples/scenarios/hundred-callers.yaml), then
   every caller cancels: the time from the last ACK a caller got until every invitation
   ended and the end-of-scenario checks were done, and until the run was over (every actor
   logged out, the server stopped); and the runner's own share, from the last invitation
   event to the checks done.

    .venv/bin/python bench/scenario_overhead.py [--samples 5]

Results go to bench/results/<date>-scenario.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import trio

from rtmcall.client import ClientConfig, connect
from rtmcall.scenario.load import load_text
from rtmcall.scenario.proxy import FaultProxy
from rtmcall.scenario.runner import ScenarioRun
from rtmcall.server import serve

ROUNDS = 20
CONFIG = "config: {no_response_timeout: 5, lifetime: 10, confirm_timeout: 2}\n"


def flow_scenario() -> str:
    steps = []
    for i in range(ROUNDS):
        steps += [
            f"  - alice: call bob --content r{i} --as c{i}",
            f"  - bob: expect RemoteInvitationReceived c{i}",
            f"  - alice: cancel c{i}",
            f"  - bob: expect RemoteInvitationCanceled c{i}",
        ]
    return "name: flow\n" + CONFIG + "actors: {alice: {}, bob: {}}\nsteps:\n" + "\n".join(steps)


async def by_hand() -> float:
    config = ClientConfig(no_response_timeout=5, lifetime=10, confirm_timeout=2)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, "127.0.0.1", 0)
        up = ("127.0.0.1", server.port)
        pa = await nursery.start(FaultProxy(up).run)
        pb = await nursery.start(FaultProxy(up).run)
        async with connect(pa.url, "alice", config=config) as alice:
            async with connect(pb.url, "bob", config=config) as bob:
                async with bob.events() as events:
                    t0 = time.perf_counter()
                    for i in range(ROUNDS):
                        inv = await alice.call("bob", content=f"r{i}")
                        async for ev in events:
                            if ev.name == "RemoteInvitationReceived" and ev.invitation.id == inv.id:
                                break
                        await alice.cancel(inv.id)
                        async for ev in events:
                            if ev.name == "RemoteInvitationCanceled" and ev.invitation.id == inv.id:
                                break
                    took = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    return took


async def by_runner() -> float:
    (scenario,) = load_text(flow_scenario(), "flow.yaml")
    run = ScenarioRun(scenario)
    result = await run.play()
    assert result.ok, result.failure
    steps = result.steps
    return steps[-1].started + steps[-1].elapsed - steps[0].started


def hundred_scenario(n: int = 100) -> str:
    """The example's 100 callers ringing carol at once; then every caller hangs up."""
    actors = "".join(f"  u{i:03d}: {{}}\n" for i in range(n))
    calls = "".join(f"      - u{i:03d}: call carol --as c{i:03d}\n" for i in range(n))
    rings = "".join(f"      - carol: expect RemoteInvitationReceived c{i:03d}\n" for i in range(n))
    cancels = "".join(f"      - u{i:03d}: cancel c{i:03d}\n" for i in range(n))
    return (
        f"name: hundred\n{CONFIG}actors:\n  carol: {{}}\n{actors}steps:\n"
        f"  - parallel:\n{calls}  - parallel:\n{rings}  - parallel:\n{cancels}"
    )


async def hundred() -> tuple[float, float, float]:
    (scenario,) = load_text(hundred_scenario(), "hundred.yaml")
    run = ScenarioRun(scenario)
    t0 = trio.current_time()
    result = await run.play()
    end = trio.current_time() - t0
    assert result.ok, result.failure
    last_ack = max(
        e.at
        for name, events in result.events.items()
        if name != "carol"
        for e in events
        if e.obj["event"] == "LocalInvitationReceivedByPeer"
    )
    last_end = max(
        e.at
        for events in result.events.values()
        for e in events
        if e.obj["event"] in ("LocalInvitationCanceled", "RemoteInvitationCanceled")
    )
    return result.checked_at - last_ack, end - last_ack, result.checked_at - last_end


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("rtmcall").setLevel(logging.ERROR)
    a, b, h = [], [], []
    for _ in range(args.samples):
        a.append(trio.run(by_hand))
        b.append(trio.run(by_runner))
        h.append(trio.run(hundred))
    steps = ROUNDS * 4
    per_step_ms = (statistics.median(b) - statistics.median(a)) / steps * 1000
    out = {
        "by_hand_s": a,
        "by_runner_s": b,
        "steps": steps,
        "overhead_per_step_ms_median": round(per_step_ms, 3),
        "hundred_last_ack_to_checked_s": [x for x, _, _ in h],
        "hundred_last_ack_to_end_s": [y for _, y, _ in h],
        "hundred_last_terminal_to_checked_s": [z for _, _, z in h],
        "hundred_checked_median_s": round(statistics.median(x for x, _, _ in h), 3),
        "hundred_end_median_s": round(statistics.median(y for _, y, _ in h), 3),
        "hundred_runner_share_median_ms": round(statistics.median(z for _, _, z in h) * 1000, 1),
    }
    print(json.dumps(out, indent=2))
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    (results / f"{time.strftime('%Y-%m-%d')}-scenario.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
