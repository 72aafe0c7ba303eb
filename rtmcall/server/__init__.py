"""The relay server: WebSocket logins, peer-message routing, presence (SPEC §1, §3).

``await nursery.start(serve, "127.0.0.1", 0)`` returns a running :class:`Server` with
its ``port`` and ``url``. Users and presence live behind the :class:`Hub` protocol
(:class:`MemoryHub` in one process); limits and timers are a :class:`ServerConfig`.
"""

from .config import ServerConfig
from .hub import Health, Hub, HubUnavailable, MemoryHub
from .serve import Server, serve
from .session import Session
from .stats import Stats
from .tokens import TokenError, mint_token, verify_token

__all__ = [
    "Health",
    "Hub",
    "HubUnavailable",
    "MemoryHub",
    "Server",
    "ServerConfig",
    "Session",
    "Stats",
    "TokenError",
    "mint_token",
    "serve",
    "verify_token",
]
