from __future__ import annotations

from ..redis.conftest import shared_redis

__all__ = ["shared_redis"]
