from __future__ import annotations

from collections.abc import Iterator

import pytest

from .redisproc import RedisProcess


@pytest.fixture(scope="session")
def shared_redis() -> Iterator[RedisProcess]:
    """One redis-server for the tests that don't break it (each uses its own prefix)."""
    r = RedisProcess()
    yield r
    r.close()


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    """A redis-server this test may pause, kill and restart."""
    r = RedisProcess()
    yield r
    r.close()
