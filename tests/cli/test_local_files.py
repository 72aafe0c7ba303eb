"""Where a user's files live: one name per user and server, and the control socket's folder
only its OS user may enter (SPEC §7)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rtmcall.cli.local_files import (
    MAX_SOCKET_PATH,
    control_dirs,
    history_path,
    make_private_dir,
    private_dir_problem,
    slug,
    socket_name,
)


def test_names_are_per_user_and_server_and_safe() -> None:
    url = "ws://127.0.0.1:8765"
    assert slug("alice", url) != slug("bob", url)
    assert slug("alice", url) != slug("alice", "ws://127.0.0.1:8766")
    assert slug("alice", url) == slug("alice", "WS://127.0.0.1:8765/")
    odd = slug("a<b>|c:d?e f", url)
    assert odd.startswith("a_b__c_d_e_f-") and "/" not in odd
    assert history_path("alice", url) != history_path("bob", url)


def test_a_folder_open_to_others_is_tightened(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    assert "open to other users" in (private_dir_problem(folder) or "")
    assert make_private_dir(folder) is None
    assert stat.S_IMODE(os.lstat(folder).st_mode) == 0o700


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to chown")
def test_another_users_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)
    assert "belongs to another user" in (make_private_dir(folder) or "")


def test_a_long_config_dir_still_gets_a_short_socket_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    monkeypatch.setenv("RTMCALL_CONFIG_DIR", str(deep))
    (folder,) = control_dirs()
    path = folder / socket_name("x" * 64, "ws://127.0.0.1:8765")
    assert len(os.fsencode(path)) <= MAX_SOCKET_PATH
    monkeypatch.setenv("RTMCALL_CONFIG_DIR", str(tmp_path / "other" / ("d" * 60) / ("e" * 60)))
    assert control_dirs() != [folder]  # two config dirs never share one
