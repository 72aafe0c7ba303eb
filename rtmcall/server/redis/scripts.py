"""The Lua scripts the hub runs on a user's registration (``{prefix}:u:{user}``), each
one atomic in Redis: claim it while it is ours, take it whoever has it, release it only
while it is ours."""

from __future__ import annotations

import hashlib
from typing import Any

from .resp import RedisConnection, ReplyError

# Set the registration only if it is absent or still ours (its value starts with our
# "node\tsession\t"); answer 0 when another session owns the user now.
CLAIM = """
local v = redis.call('GET', KEYS[1])
if (not v) or string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[3]))
  return 1
end
return 0
"""
# Take the registration, whoever had it; answer the previous value (SET ... GET needs 6.2).
TAKE = """
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
return old
"""
# Delete the registration only if it is still ours.
RELEASE = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


class Script:
    """A Lua script run by EVALSHA (EVAL when Redis has not seen it yet)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    def command(self, keys: list[Any], args: list[Any]) -> tuple[Any, ...]:
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    async def __call__(self, redis: RedisConnection, keys: list[Any], args: list[Any]) -> Any:
        try:
            return await redis.call(*self.command(keys, args))
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await redis.call("EVAL", self.text, len(keys), *keys, *args)
