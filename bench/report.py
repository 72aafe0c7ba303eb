"""Medians of the harness's samples, the target ratios, and the Markdown table."""

from __future__ import annotations

import argparse
import math
import statistics

#: Issue 6's targets.
CPU_RATIO = 1.33
P99_RATIO = 2.0
KIB_PER_CONN = 24.0
IDLE_RATIO = 1.1
HELP_MS = 120.0


def median_sample(samples: list[dict]) -> dict:
    """Field-wise median of numeric fields (errors and unexpected: the sum)."""
    if not samples:
        return {}
    out: dict = {}
    for key in samples[0]:
        values = [s.get(key) for s in samples]
        if key in ("errors", "unexpected"):
            out[key] = sum(v or 0 for v in values)
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            out[key] = statistics.median(values)
    out["n"] = len(samples)
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def summarize(samples: dict, args: argparse.Namespace) -> dict:
    summary: dict = {"throughput": {}, "ratios": {}}
    for pairs, bucket in samples.get("throughput", {}).items():
        med = {name: median_sample(runs) for name, runs in bucket.items()}
        summary["throughput"][pairs] = med
        summary["ratios"][f"cpu_{pairs}_pairs"] = _ratio(
            med["rtmcall"].get("cpu_us_per_op"),
            med.get("raw_trio_same_load", {}).get("cpu_us_per_op"),
        )
        summary["ratios"][f"cpu_{pairs}_pairs_lean_closed"] = _ratio(
            med.get("rtmcall_lean_closed", {}).get("cpu_us_per_op"),
            med["raw_trio_closed"].get("cpu_us_per_op"),
        )
    lat = {k: median_sample(v) for k, v in samples.get("latency", {}).items()}
    summary["latency"] = lat
    if lat:
        summary["ratios"]["p99"] = _ratio(lat["rtmcall"].get("p99_ms"), lat["trio"].get("p99_ms"))
    if "memory" in samples:
        summary["memory"] = samples["memory"]
    idle = {k: median_sample(v) for k, v in samples.get("idle_cpu", {}).items()}
    summary["idle_cpu"] = idle
    if len(idle) == 2:
        few, many = (idle[k] for k in sorted(idle, key=int))
        summary["ratios"]["idle_cpu"] = _ratio(many.get("cpu_us_per_op"), few.get("cpu_us_per_op"))
        net_many, net_few = many.get("cpu_us_per_op_net"), few.get("cpu_us_per_op_net")
        # Meaningless when the idle users alone saturate the server (negative "net").
        if net_many and net_few and net_many > 0 and net_few > 0:
            summary["ratios"]["idle_cpu_net"] = _ratio(net_many, net_few)
    if "startup" in samples:
        summary["startup"] = {k: v.get("median_ms") for k, v in samples["startup"].items()}
    return summary


def all_clean(samples: dict) -> bool:
    """Zero errors and zero unexpected outcomes in every sample."""

    def walk(node: object) -> bool:
        if isinstance(node, dict):
            if node.get("errors") or node.get("unexpected"):
                return False
            return all(walk(v) for v in node.values())
        if isinstance(node, list):
            return all(walk(v) for v in node)
        return True

    return walk({k: v for k, v in samples.items() if k != "memory"})


def _n(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def _positive(value: float | None) -> float | None:
    return value if value is not None and value > 0 else None


def _check(ratio: float | None, limit: float, digits: int = 2) -> tuple[str, str]:
    if ratio is None:
        return "–", "–"
    return f"{ratio:.{digits}f} ×", ("✅" if ratio <= limit else "❌")


def _idle_samples(result: dict) -> int:
    return min((len(v) for v in result.get("samples", {}).get("idle_cpu", {}).values()), default=0)


def markdown(result: dict) -> str:
    meta, summary = result["meta"], result["summary"]
    settings = result["settings"]
    lines = [
        f"### Performance ({meta['date'][:10]})",
        "",
        f"Machine: {meta['nproc']} × {meta['cpu']}, Python {meta['python']}, "
        f"trio {meta['trio']}, trio-websocket {meta['trio_websocket']}; server and load "
        f"generators share it. Medians of {settings['runs']} run(s) of "
        f"{settings['duration']:g} s (+{settings['warmup']:g} s warm-up) each, alternating "
        f"A B A B, a fresh server process per sample (idle users: two servers kept up, "
        f"{_idle_samples(result)} samples each, A B B A); {meta.get('total_s', '?')} s in all. "
        f"Reproduce: `{meta['command']}`.",
        "",
        "| measure | rtmcall | raw trio-websocket relay | raw asyncio websockets relay "
        "| rtmcall ÷ trio relay | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    row = lines.append
    for pairs, med in summary.get("throughput", {}).items():
        rt, closed = med["rtmcall"], med["raw_trio_closed"]
        same = med.get("raw_trio_same_load", {})
        asy = med.get("asyncio_closed", {})
        asy_same = med.get("asyncio_same_load", {})
        row(
            f"| operations/s, {pairs} pairs, closed loop (rtmcall: SDK clients) "
            f"| {_n(rt.get('ops_per_s'))} | {_n(closed.get('ops_per_s'))} "
            f"| {_n(asy.get('ops_per_s'))} | | |"
        )
        ratio, ok = _check(summary["ratios"].get(f"cpu_{pairs}_pairs"), CPU_RATIO)
        row(
            f"| server CPU µs per operation, {pairs} pairs, at rtmcall's SDK rate "
            f"({_n(rt.get('ops_per_s'))}/s) | {_n(rt.get('cpu_us_per_op'))} "
            f"| {_n(same.get('cpu_us_per_op'))} | {_n(asy_same.get('cpu_us_per_op'))} "
            f"| {ratio} | ≤ {CPU_RATIO} × {ok} |"
        )
        lean = med.get("rtmcall_lean_closed", {})
        ratio, ok = _check(summary["ratios"].get(f"cpu_{pairs}_pairs_lean_closed"), CPU_RATIO)
        row(
            f"| server CPU µs per operation, {pairs} pairs, closed loop, lean clients "
            f"(ops/s) | {_n(lean.get('cpu_us_per_op'))} ({_n(lean.get('ops_per_s'))}/s) "
            f"| {_n(closed.get('cpu_us_per_op'))} ({_n(closed.get('ops_per_s'))}/s) "
            f"| {_n(asy.get('cpu_us_per_op'))} ({_n(asy.get('ops_per_s'))}/s) "
            f"| {ratio} | ≤ {CPU_RATIO} × {ok} |"
        )
    lat = summary.get("latency", {})
    if lat:
        rate = settings.get("latency_rate")
        rt, tr, asy = lat.get("rtmcall", {}), lat.get("trio", {}), lat.get("asyncio", {})
        for label, key in (("p50", "p50_ms"), ("p99", "p99_ms")):
            ratio, ok = _check(_ratio(rt.get(key), tr.get(key)), P99_RATIO)
            target = f"≤ {P99_RATIO} × {ok}" if label == "p99" else ""
            row(
                f"| {label} send→Accepted (ms) at {rate:g}/s, {settings['pairs'][0]} pairs "
                f"| {_n(rt.get(key), 1)} | {_n(tr.get(key), 1)} | {_n(asy.get(key), 1)} "
                f"| {ratio} | {target} |"
            )
    mem = summary.get("memory", {})
    for n in sorted(mem.get("rtmcall", {}), key=int):
        rt = mem["rtmcall"][n]["kib_per_conn"]
        tr = mem.get("trio", {}).get(n, {}).get("kib_per_conn")
        ok = "✅" if rt <= KIB_PER_CONN else "❌"
        row(
            f"| KiB per idle logged-in connection, {int(n):,} users | {_n(rt, 1)} "
            f"| {_n(tr, 1)} | | {_n(_ratio(rt, tr), 2)} × | ≤ {KIB_PER_CONN:g} KiB {ok} |"
        )
    idle = summary.get("idle_cpu", {})
    if len(idle) == 2:
        few_n, many_n = sorted(idle, key=int)
        few, many = idle[few_n], idle[many_n]
        ratio, ok = _check(summary["ratios"].get("idle_cpu"), IDLE_RATIO)
        net, net_ok = _check(summary["ratios"].get("idle_cpu_net"), IDLE_RATIO)
        row(
            f"| server CPU µs per handshake at {settings.get('latency_rate'):g}/s: "
            f"{int(few_n):,} → {int(many_n):,} idle users | {_n(few.get('cpu_us_per_op'))} → "
            f"{_n(many.get('cpu_us_per_op'))} | | | {ratio} | ≤ {IDLE_RATIO} × {ok} |"
        )
        raw = mem.get("trio", {}).get(many_n, {}).get("idle_ms_per_s")
        row(
            f"| server CPU ms per second, {int(many_n):,} idle users alone (a heartbeat "
            f"every 30 s each) | {_n(many.get('idle_ms_per_s'))} | {_n(raw)} | "
            f"| {_n(_ratio(many.get('idle_ms_per_s'), raw), 2)} × | |"
        )
        row(
            f"| … the same net of the idle users' own heartbeat CPU "
            f"({_n(few.get('idle_ms_per_s'))} → {_n(many.get('idle_ms_per_s'))} ms/s) "
            f"| {_n(_positive(few.get('cpu_us_per_op_net')))} → "
            f"{_n(_positive(many.get('cpu_us_per_op_net')))} | | | {net} | {net_ok} |"
        )
    start = summary.get("startup", {})
    if start:
        help_ms = start.get("help")
        ok = "–" if help_ms is None else ("✅" if help_ms <= HELP_MS else "❌")
        row(f"| `rtmcall --help` wall (ms) | {_n(help_ms)} | | | | ≤ {HELP_MS:g} ms {ok} |")
        row(f"| one-shot `rtmcall call` wall, accepted (ms) | {_n(start.get('call'))} | | | | |")
    if all_clean(result["samples"]):
        lines += ["", "Errors and unexpected outcomes: zero in every sample."]
    else:
        lines += ["", "Errors or unexpected outcomes in some samples: see the JSON file."]
    return "\n".join(lines)
