"""rtmcall's real wire protocol from lean clients: the server's cost without the SDK's.

The SDK (``rtmcall bench``) spends more CPU per call than the server does, so on a small
machine it cannot load the server to its limit, and its own queueing shows in every
latency. This driver replays, per accepted handshake, exactly the frames the SDK sends:
four *quiet* ``Send`` frames (invite, ack, accept, confirm; a delivered quiet Send gets
no Result) — 4 frames in, 4 Delivers out, as the raw relay — and a ``Ping`` every
heartbeat per connection unless frames flowed both ways since the last, as the SDK does.
(The SDK watches a peer's presence once and keeps watching it across calls, so a
repeated pair sends no presence requests.) Frames
are pre-formatted strings; replies are recognised by substring, not decoded. ``--presence``
adds the SDK's old per-invitation Subscribe/Unsubscribe (4 requests, 4 answers), and
``--results`` asks a Result for every Send, to measure what those cost; ``--no-heartbeat``
leaves out the pings.

    python bench/lean_rtmcall.py URL --pairs 50 --duration 5 [--rate R] [--server-pid PID]

Same phases, pacing, counting and JSON as ``lean_load.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import uuid

import trio
from lean_load import CALL_TIMEOUT, parse_args, run_load
from trio_websocket import WebSocketConnection, open_websocket_url

from rtmcall.bench.tally import Tally

QUIET = True


def _send(rid: int, to: str, msg: str) -> str:
    quiet = ',"quiet":true' if QUIET else ""
    return f'{{"t":"send","rid":{rid},"to":"{to}","msg":{{{msg}}}{quiet}}}'


async def _login(ws: WebSocketConnection, user: str) -> float:
    """Log in; returns the heartbeat the server asks for."""
    await ws.send_message(json.dumps({"t": "login", "user": user}, separators=(",", ":")))
    while True:
        data = await ws.get_message()
        if '"t":"login_ok"' in data:
            return float(json.loads(data).get("heartbeat", 3.0))
        if '"t":"login_fail"' in data:
            raise ConnectionError(data)


async def _heartbeat(side: _Side, interval: float) -> None:
    """A Ping every ``interval``, except when frames flowed both ways since the last one
    (the SDK's rule: its Sends carry the ack and the server's Delivers the handled rid)."""
    last = (side.rid, side.rx)
    while True:
        await trio.sleep(interval)
        now = (side.rid, side.rx)
        flowing = now[0] != last[0] and now[1] != last[1]
        last = now
        if not flowing:
            await side.ws.send_message('{"t":"ping"}')


class _Side:
    """One connection's request ids (the SDK numbers them per connection) and how many
    peer messages it received."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.rid = 0
        self.rx = 0

    def next(self) -> int:
        self.rid += 1
        return self.rid


async def _callee(side: _Side, caller: str, presence: bool, tally: Tally) -> None:
    ws = side.ws
    while True:
        data = await ws.get_message()
        if '"t":"msg"' not in data:
            if '"t":"ping"' in data:
                await ws.send_message('{"t":"pong"}')
            continue
        side.rx += 1
        start = data.index('"id":"', data.index('"msg":{')) + 6
        inv_id = data[start : data.index('"', start)]
        if '"k":"invite"' in data:
            await ws.send_message(_send(side.next(), caller, f'"k":"ack","id":"{inv_id}"'))
            if presence:
                await ws.send_message(f'{{"t":"sub","rid":{side.next()},"users":["{caller}"]}}')
            accept = f'"k":"accept","id":"{inv_id}","response":"ok"'
            await ws.send_message(_send(side.next(), caller, accept))
        elif '"k":"confirm"' in data:
            if presence:
                await ws.send_message(f'{{"t":"unsub","rid":{side.next()},"users":["{caller}"]}}')
            tally.callee_done += 1


async def _caller(
    side: _Side, callee: str, args: argparse.Namespace, tally: Tally, stop: trio.Event
) -> None:
    ws = side.ws
    presence = args.presence
    interval = args.pairs / args.rate if args.rate else None
    next_at = trio.current_time() + random.random() * interval if interval else 0.0
    while True:
        if interval is not None:
            with trio.move_on_at(next_at):
                await stop.wait()  # the run may end before our next slot
            next_at = max(next_at + interval, trio.current_time())
        may, measured = tally.take_call()
        if not may:
            stop.set()
            return
        inv_id = uuid.uuid4().hex
        t0 = time.perf_counter()
        received = None
        with trio.move_on_after(CALL_TIMEOUT):
            invite = f'"k":"invite","id":"{inv_id}","content":"bench"'
            await ws.send_message(_send(side.next(), callee, invite))
            tally.placed += 1
            if presence:
                await ws.send_message(f'{{"t":"sub","rid":{side.next()},"users":["{callee}"]}}')
            while True:
                data = await ws.get_message()
                if '"t":"msg"' not in data:
                    if '"t":"ping"' in data:
                        await ws.send_message('{"t":"pong"}')
                    continue
                side.rx += 1
                if '"k":"ack"' in data:
                    received = time.perf_counter() - t0
                elif '"k":"accept"' in data:
                    break
            outcome = time.perf_counter() - t0
            await ws.send_message(_send(side.next(), callee, f'"k":"confirm","id":"{inv_id}"'))
            if presence:
                await ws.send_message(f'{{"t":"unsub","rid":{side.next()},"users":["{callee}"]}}')
            tally.call_ended(measured, True, received, outcome)
            continue
        tally.error("no ack/accept within 30 s")
        return


async def _pair(
    url: str,
    i: int,
    args: argparse.Namespace,
    tally: Tally,
    go: trio.Event,
    stop: trio.Event,
    done: list[int],
) -> None:
    caller, callee = f"{args.prefix}-c{i}", f"{args.prefix}-e{i}"
    callee_url = args.callee_url or url  # another node: every message crosses Redis
    if args.odd_pairs_url and i % 2:
        url = callee_url = args.odd_pairs_url  # both of this pair on that node
    async with open_websocket_url(url) as cws, open_websocket_url(callee_url) as ews:
        heartbeat = await _login(ews, callee)
        await _login(cws, caller)
        tally.logged_in += 2
        async with trio.open_nursery() as nursery:
            caller_side, callee_side = _Side(cws), _Side(ews)
            if not args.no_heartbeat:
                nursery.start_soon(_heartbeat, caller_side, heartbeat)
                nursery.start_soon(_heartbeat, callee_side, heartbeat)
            nursery.start_soon(_callee, callee_side, caller, args.presence, tally)
            await go.wait()
            try:
                await _caller(caller_side, callee, args, tally, stop)
            finally:
                done[0] += 1
            await trio.sleep_forever()  # the main task cancels us after the drain


def main() -> None:
    global QUIET
    args = parse_args()
    QUIET = not args.results
    print(json.dumps(trio.run(run_load, args.url, args, _pair)))


if __name__ == "__main__":
    main()
