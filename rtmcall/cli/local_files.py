"""Files one user+server pair owns on this machine: the prompt history and the control socket
of a running softphone (SPEC §7).

Both are named after the user id *and* the server URL, so bob's Up arrow never shows
alice's lines and a softphone for one server never answers for another. User ids may hold
characters no file name should (``<>|:?`` …), so a name is a readable part (the safe
characters of the user id) and a hash of the exact pair.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import sys
import tempfile
import urllib.parse
import warnings
from pathlib import Path

from . import config

RUNTIME_DIR_ENV = "RTMCALL_RUNTIME_DIR"

#: AF_UNIX paths are limited to 108 bytes on Linux (104 on macOS), with the final NUL.
MAX_SOCKET_PATH = 107 if sys.platform.startswith("linux") else 103


def same_server(url: str) -> str:
    """``url`` in one spelling per server: ``WS://Host:80/`` and ``ws://host`` are one
    (several comma-separated: each, in the order given)."""
    if "," in url:
        return ",".join(same_server(one) for one in url.split(",") if one.strip())
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port or (443 if scheme == "wss" else 80)
    except ValueError:
        return url
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    path = parts.path.rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{host}:{port}{path}{query}"


def servers_overlap(one: str, other: str) -> bool:
    """Whether two ``--server`` values (each one URL or several comma-separated) name a
    server in common: a softphone given ``ws://a,ws://b`` is on ``ws://b`` too."""
    return bool(set(same_server(one).split(",")) & set(same_server(other).split(",")))


def readable(user: str) -> str:
    """The file-name-safe part of ``user`` that starts the names of its files."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", user)[:24]


def slug(user: str, url: str) -> str:
    """A file-name-safe name for the pair: ``alice-3f9c1a2b7d4e``."""
    digest = hashlib.sha256(f"{user}\0{same_server(url)}".encode()).hexdigest()[:12]
    return f"{readable(user)}-{digest}"


def history_path(user: str, url: str) -> Path:
    """The prompt history of ``user`` on ``url`` (one file per pair)."""
    return config.config_dir() / "prompt-history" / slug(user, url)


def control_dirs() -> list[Path]:
    """Where a softphone's control socket may live, best first.

    ``$RTMCALL_RUNTIME_DIR`` when set; else, when ``$RTMCALL_CONFIG_DIR`` is set (a separate
    rtmcall world, as the tests use), its ``run`` folder; else the platform's runtime dir
    (``$XDG_RUNTIME_DIR/rtmcall``, which the system empties at logout), then the config
    dir's ``run`` folder.
    """
    override = os.environ.get(RUNTIME_DIR_ENV)
    fallback = config.config_dir() / "run"
    if override:
        dirs = [Path(override)]
    elif os.environ.get(config.CONFIG_DIR_ENV):
        dirs = [fallback]
    else:
        from platformdirs import user_runtime_dir

        with warnings.catch_warnings():  # "XDG_RUNTIME_DIR is not set, falling back to …"
            warnings.simplefilter("ignore")
            dirs = [Path(user_runtime_dir("rtmcall", appauthor=False)), fallback]
    return [_short_enough(d) for d in dirs]


def _short_enough(folder: Path) -> Path:
    """``folder``, or when a socket path in it would be too long for AF_UNIX, a short
    folder of the temp dir named after it (so two config dirs still never share one)."""
    longest = folder / socket_name("x" * 24, "")
    if len(os.fsencode(longest)) <= MAX_SOCKET_PATH:
        return folder
    uid = os.getuid() if hasattr(os, "getuid") else 0
    digest = hashlib.sha256(os.fsencode(folder)).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"rtmcall-{uid}-{digest}"


def private_dir_problem(path: Path) -> str | None:
    """Why ``path`` is not a directory only we can enter (None when it is)."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory"
    if sys.platform != "win32":
        if st.st_uid != os.getuid():
            return f"{path} belongs to another user (uid {st.st_uid})"
        if st.st_mode & 0o077:
            return f"{path} is open to other users (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def make_private_dir(path: Path) -> str | None:
    """Create ``path`` (mode 0700) if needed and tighten it if it is ours; None when it is
    then private, else why not."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and st.st_mode & 0o077:
            os.chmod(path, 0o700)
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    return private_dir_problem(path)


def socket_name(user: str, url: str) -> str:
    return f"{slug(user, url)}.sock"
