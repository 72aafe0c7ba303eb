"""Login tokens: JWT, HS256, subject = user id, with an expiry of at most 24 h.

Tokens carry wall-clock times (``exp``, ``iat``) because they cross process boundaries;
the server turns the remaining lifetime into a deadline on its own monotonic clock right
after verifying, so no wall-clock comparison happens later (SPEC §2 "Timers").

Failures are a :class:`TokenError` carrying Agora's LoginError code (INVALID_TOKEN or
TOKEN_EXPIRED) and a message that is safe to show the user: it says what is wrong, never
the secret or the expected signature.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import jwt

from rtmcall.engine.codes import LoginError

ALGORITHM = "HS256"
#: Agora's cap on a token's lifetime.
MAX_TTL = 24 * 3600.0


class TokenError(Exception):
    """A token was refused. ``reason`` is a LoginError code."""

    def __init__(self, reason: LoginError, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@contextmanager
def _quiet() -> Iterator[None]:
    # pyjwt warns about HMAC keys under 32 bytes on every call; serve() logs that once.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        yield


def mint_token(secret: str, user: str, ttl: float = 3600.0, *, now: float | None = None) -> str:
    """A token for ``user`` that expires ``ttl`` seconds from ``now`` (wall clock).

    Raises:
        ValueError: ``ttl`` is above 24 h or ``secret`` is empty. A negative ``ttl`` is
            allowed so tests can mint an already expired token.
    """
    if not secret:
        raise ValueError("secret must not be empty")
    if ttl > MAX_TTL:
        raise ValueError(f"token lifetime {ttl:g} s is above the 24 h maximum")
    issued = time.time() if now is None else now
    claims = {"sub": user, "iat": int(issued), "exp": int(issued + ttl)}
    with _quiet():
        return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(
    secret: str, token: str | None, user: str, *, max_ttl: float = MAX_TTL, now: float | None = None
) -> float:
    """Check that ``token`` is valid now and names ``user``; return its seconds left.

    Raises:
        TokenError: INVALID_TOKEN (missing, malformed, bad signature, other user, lifetime
            above ``max_ttl``) or TOKEN_EXPIRED.
    """
    if not token:
        raise TokenError(LoginError.INVALID_TOKEN, "this server requires a token; none was given")
    wall = time.time() if now is None else now
    try:
        with _quiet():
            claims = jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "sub"], "verify_exp": False, "verify_sub": False},
            )
    except jwt.InvalidSignatureError:
        raise TokenError(LoginError.INVALID_TOKEN, "token signature is invalid") from None
    except jwt.DecodeError as exc:
        raise TokenError(LoginError.INVALID_TOKEN, f"token is malformed: {exc}") from None
    except jwt.InvalidTokenError as exc:
        raise TokenError(LoginError.INVALID_TOKEN, f"token is invalid: {exc}") from None
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise TokenError(LoginError.INVALID_TOKEN, "token expiry is not a number")
    if claims.get("sub") != user:
        raise TokenError(LoginError.INVALID_TOKEN, f"token is not for user {user!r}")
    left = float(exp) - wall
    if left <= 0:
        raise TokenError(LoginError.TOKEN_EXPIRED, f"token expired {-left:.0f} s ago")
    if left > max_ttl + 60:
        raise TokenError(LoginError.INVALID_TOKEN, "token lifetime is above the 24 h maximum")
    return left
