"""The remembered login: ``rtmcall login alice`` stores the user and the server URL so a later
``rtmcall call bob`` needs neither (the way ``gh auth login`` works).

The file is JSON in the platform's user config directory, or in ``$RTMCALL_CONFIG_DIR`` when
that is set (tests point it at a temporary directory). Explicit flags and environment
variables always win over it; a missing or unreadable file is treated as empty, never as an
error, because it is only a convenience.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

CONFIG_DIR_ENV = "RTMCALL_CONFIG_DIR"
FILE_NAME = "config.json"


def config_dir() -> Path:
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override)
    # Imported here: platformdirs is cheap, but `rtmcall --help` must not pay for it.
    from platformdirs import user_config_dir

    return Path(user_config_dir("rtmcall", appauthor=False))


def config_path() -> Path:
    return config_dir() / FILE_NAME


def load() -> dict[str, str]:
    """The remembered settings (``user``, ``server``); empty when there are none."""
    try:
        data = json.loads(config_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def remember(**values: str) -> None:
    """Merge ``values`` into the file. Failing to write is not fatal: the login goes on."""
    data = load()
    data.update(values)
    path = config_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)  # atomic, so a concurrent reader never sees half a file
    except OSError:
        pass
