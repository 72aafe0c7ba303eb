"""``rtmcall bench``: a load generator for rtmcall servers (what sipp is for SIP).

It logs in caller/callee pairs with the real SDK, has every caller place invitations back
to back (or at a fixed rate), the callee accept, refuse or let the caller cancel them, and
reports handshakes/s, latency percentiles, errors and unexpected outcomes::

    result = await run_bench(BenchOptions(pairs=50, duration=10))
    print(result.to_json())

The typer command calls :func:`rtmcall.bench.command.bench_command`. This package imports
nothing heavy at import time (trio, the client and rich load on first use), so that
``rtmcall --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .command import bench_command
    from .options import BenchOptions, Mode
    from .result import BenchResult, LatencyStats
    from .runner import BenchSnapshot, run_bench

__all__ = [
    "BenchOptions",
    "BenchResult",
    "BenchSnapshot",
    "LatencyStats",
    "Mode",
    "bench_command",
    "run_bench",
]

_WHERE = {
    "BenchOptions": "options",
    "Mode": "options",
    "BenchResult": "result",
    "LatencyStats": "result",
    "BenchSnapshot": "runner",
    "run_bench": "runner",
    "bench_command": "command",
}


def __getattr__(name: str) -> Any:
    # Lazy: the runner imports trio and the client; keep them off the --help path.
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'rtmcall.bench' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)
