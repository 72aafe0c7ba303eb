"""The interactive table uses the terminal's width (issue 13, item 12): on a 160-column
terminal a long content is shown whole, on an 80-column one it is cut with an ellipsis and
the row still fits. The real program in a pseudo-terminal."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from .conftest import REPO, cli_env

pexpect = pytest.importorskip("pexpect")

CONTENT = "the payment deploy failed, please join the incident bridge now"  # 62 characters


@pytest.mark.parametrize(("columns", "whole"), [(160, True), (80, False)])
def test_the_content_column_uses_the_width(
    server_url: str, config_dir: Path, columns: int, whole: bool
) -> None:
    user = f"wide-{columns}"
    env = cli_env(config_dir, NO_COLOR="1", PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "rtmcall.cli", "login", user, "--server", server_url],
        env=env,
        cwd=str(REPO),
        dimensions=(30, columns),
        encoding="utf-8",
        timeout=8,
    )
    try:
        child.expect_exact(f"{user}>")
        child.send(f"call p{columns} --content '{CONTENT}'\r")
        # The table's row (the log line above it quotes the content: 'the payment …').
        # The peer is offline: the state column says so ("waiting for … 29s").
        cell = r"waiting for p\d+ \d+s\s+(" + re.escape(CONTENT[:4]) + r"[^'\r\n]*)"
        child.expect(cell)
        shown = child.match.group(1).strip()
        if whole:
            assert shown.startswith(CONTENT), shown
        else:
            assert "…" in shown and CONTENT not in shown, shown
        child.send("quit\r")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
