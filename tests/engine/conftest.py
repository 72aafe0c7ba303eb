"""The engine tests' network: alice and bob, their engines pumped through ``Network``."""

from __future__ import annotations

import pytest

from .network import Network


@pytest.fixture
def net() -> Network:
    n = Network()
    n.add("alice")
    n.add("bob")
    return n
