"""``rtmcall health``: ask a server node whether it is healthy (for scripts and probes)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..options import ServerOpt


def health(
    server: ServerOpt = None,
    timeout: Annotated[
        float, typer.Option(metavar="S", min=0.1, help="Give up after this many seconds.")
    ] = 5.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = (
        False
    ),
    ca: Annotated[
        str | None, typer.Option(metavar="FILE", help="Trust this CA for wss:// (private CA).")
    ] = None,
) -> None:
    """Check a server node: exit 0 when healthy, 1 when it answers unhealthy (for
    example its Redis is unreachable), 3 when it cannot be reached.

    The node answers a WebSocket opening request for the path /health with HTTP 200 or 503
    and a JSON body {"ok", "detail", "url"}. Several nodes (comma-separated) are each
    checked, at once, one line each in the order given; the exit code is the worst.

    \b
    Examples:
      rtmcall health --server ws://10.0.0.5:8765
      rtmcall health --server ws://10.0.0.5:8765,ws://10.0.0.6:8765
      rtmcall health --json || systemctl restart rtmcall
    """
    from rtmcall.client.websocket import split_urls

    from ..options import resolve_server, run_trio

    urls = split_urls(resolve_server(server))
    raise typer.Exit(run_trio(_check_all, urls, timeout, json_output, ca))


async def _check_all(urls: list[str], wait: float, json_output: bool, ca: str | None) -> int:
    import json

    import trio

    answers: list[tuple[int, str]] = [(3, "")] * len(urls)

    async def one(i: int) -> None:
        answers[i] = await _check(urls[i], wait, ca)

    async with trio.open_nursery() as nursery:
        for i in range(len(urls)):
            nursery.start_soon(one, i)
    for url, (code, detail) in zip(urls, answers, strict=True):
        if json_output:
            print(json.dumps({"ok": code == 0, "detail": detail, "url": url}), flush=True)
        elif code == 3:
            print(detail, flush=True)
        else:
            print(f"{'healthy' if code == 0 else 'UNHEALTHY'}: {url}: {detail}", flush=True)
    return max(code for code, _ in answers)


def _reasons(exc: BaseException) -> str:
    """Every reason in ``exc``'s chain of causes (trio-websocket wraps the OSError, trio
    wraps one error per address tried), in words."""
    seen: list[str] = []
    todo: list[BaseException] = [exc]
    visited: set[int] = set()
    while todo:
        e = todo.pop()
        if id(e) in visited:
            continue
        visited.add(id(e))
        text = getattr(e, "strerror", None) or str(e)
        if text and text not in seen:
            seen.append(text)
        todo.extend(getattr(e, "exceptions", ()))
        todo.extend(c for c in (e.__cause__, e.__context__) if c is not None)
    return ": ".join(seen) or type(exc).__name__


async def _check(url: str, wait: float, ca: str | None) -> tuple[int, str]:
    """One node's exit code, and its detail (why not, when it cannot be reached)."""
    import json
    import ssl

    import trio
    from trio_websocket import ConnectionRejected, HandshakeError, open_websocket_url

    context = None
    if url.startswith("wss://"):
        context = ssl.create_default_context(cafile=ca)
    target = url.rstrip("/") + "/health"
    try:
        with trio.fail_after(wait):
            async with open_websocket_url(target, ssl_context=context, connect_timeout=wait):
                pass
    except ConnectionRejected as exc:
        try:
            answer = json.loads(exc.body or b"{}")
        except ValueError:
            answer = {}
        ok = exc.status_code == 200 and bool(answer.get("ok"))
        return (0 if ok else 1), answer.get("detail", f"HTTP {exc.status_code}")
    except (OSError, HandshakeError, trio.TooSlowError, ssl.SSLError) as exc:
        from ..runtime import unreachable_message

        return 3, unreachable_message(url, _reasons(exc))
    return 3, f"{url} upgraded the health check: not an rtmcall server?"
