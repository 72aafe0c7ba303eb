"""The hub of several server nodes through Redis (``rtmcall server --redis URL``).

:func:`open_redis_hub` runs a :class:`RedisHub` (``hub.py``). Beside it: the RESP client
(``resp.py``), what a node writes into Redis streams (``outbox.py``) and reads from them
(``streams.py``), the direct links between nodes (``links.py``, ``node_links.py``), a
session's state for a resume on another node (``handover.py``), the Lua scripts
(``scripts.py``) and the instrument that writes a wake-up's records before trio sleeps
(``pass_end.py``).
"""

from .hub import RedisHub, open_redis_hub

__all__ = ["RedisHub", "open_redis_hub"]
