"""Token logins, renewal, expiry warning and the close after the grace."""

from __future__ import annotations

import time

import jwt
import pytest
import trio
from trio.testing import MockClock

from rtmcall.engine.codes import ConnectionChangeReason, LoginError
from rtmcall.engine.frames import (
    Error,
    Kicked,
    Login,
    LoginFail,
    LoginOk,
    Ping,
    Renew,
    Renewed,
    ServerPong,
    TokenExpiring,
)
from rtmcall.server import TokenError, mint_token, verify_token

from .conftest import Harness

SECRET = "test-secret-that-is-32-bytes-long!"
OTHER = "another-secret-that-is-32-bytes-long"


def forged_exp(user: str, seconds: float) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time() + seconds)}, SECRET, algorithm="HS256")


BAD_TOKENS: dict[str, tuple[str | None, LoginError, str]] = {
    "missing": (None, LoginError.INVALID_TOKEN, "requires a token"),
    "malformed": ("not.a.jwt", LoginError.INVALID_TOKEN, "malformed"),
    "garbage": ("x" * 200, LoginError.INVALID_TOKEN, "malformed"),
    "wrong signature": (mint_token(OTHER, "alice"), LoginError.INVALID_TOKEN, "signature"),
    "other user": (mint_token(SECRET, "bob"), LoginError.INVALID_TOKEN, "not for user"),
    "expired": (mint_token(SECRET, "alice", -60), LoginError.TOKEN_EXPIRED, "expired"),
    "beyond 24 h": (forged_exp("alice", 3 * 86400), LoginError.INVALID_TOKEN, "24 h"),
    "no expiry": (
        jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256"),
        LoginError.INVALID_TOKEN,
        "exp",
    ),
    "alg none": (
        jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, None, algorithm="none"),
        LoginError.INVALID_TOKEN,
        "",
    ),
}


@pytest.mark.parametrize("case", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
async def test_bad_token_refused(
    harness: Harness, case: tuple[str | None, LoginError, str]
) -> None:
    token, reason, words = case
    with trio.fail_after(5):
        server = await harness.start(secret=SECRET)
        client = await harness.connect()
        await client.send(Login(user="alice", token=token))
        fail = await client.expect(LoginFail)
        assert fail.reason == reason
        assert words in fail.message
        assert await client.closed_code() == 1008
        assert server.stats.logins_failed == 1 and server.stats.sessions == 0


async def test_valid_token(harness: Harness) -> None:
    with trio.fail_after(5):
        await harness.start(secret=SECRET)
        client = await harness.connect()
        ok = await client.login("alice", token=mint_token(SECRET, "alice", 600))
        assert ok.token_expires_in == pytest.approx(600, abs=2)


async def test_renew(harness: Harness, autojump_clock: MockClock) -> None:
    with trio.fail_after(5):
        await harness.start(secret=SECRET)
        client = await harness.connect()
        await client.login("alice", token=mint_token(SECRET, "alice", 600))
        await client.send(Renew(rid=1, token=mint_token(SECRET, "alice", 3600)))
        renewed = await client.expect(Renewed)
        assert renewed.rid == 1
        assert renewed.token_expires_in == pytest.approx(3600, abs=2)
        await client.send(Renew(rid=2, token=mint_token(SECRET, "bob", 3600)))
        error = await client.expect(Error)
        assert (error.code, error.rid) == ("forbidden", 2)
        assert "not for user" in error.message


async def test_renew_without_secret(harness: Harness) -> None:
    with trio.fail_after(5):
        await harness.start()
        client = await harness.user("a")
        await client.send(Renew(rid=1, token="whatever"))
        assert (await client.expect(Error)).code == "unavailable"


async def test_expiry_warning_then_close_after_grace(
    harness: Harness, autojump_clock: MockClock
) -> None:
    with trio.fail_after(120):
        server = await harness.start(secret=SECRET)
        client = await harness.connect()
        ok = await client.login("alice", token=mint_token(SECRET, "alice", 60))
        assert ok.token_expires_in is not None
        start = trio.current_time()
        warning = await client.expect(TokenExpiring)
        assert trio.current_time() - start == pytest.approx(ok.token_expires_in - 30, abs=0.5)
        assert warning.seconds == pytest.approx(30, abs=0.5)
        kicked = await client.expect(Kicked)
        assert kicked.reason == ConnectionChangeReason.LOGIN_FAILURE
        assert "token expired" in kicked.message
        assert trio.current_time() - start == pytest.approx(ok.token_expires_in + 5, abs=0.5)
        assert await client.closed_code() == 1000
        assert server.stats.token_expiries == 1
        # Not resumable: the session ended.
        again = await harness.connect()
        fresh = await again.login(
            "alice", token=mint_token(SECRET, "alice", 600), resume=ok.session
        )
        assert not fresh.resumed


async def test_renew_after_warning_keeps_session(
    harness: Harness, autojump_clock: MockClock
) -> None:
    with trio.fail_after(300):
        server = await harness.start(secret=SECRET)
        client = await harness.connect()
        await client.login("alice", token=mint_token(SECRET, "alice", 60))
        await client.expect(TokenExpiring)
        await client.send(Renew(rid=7, token=mint_token(SECRET, "alice", 3600)))
        assert (await client.expect(Renewed)).rid == 7
        for _ in range(40):  # two minutes, well past the first token's expiry
            await trio.sleep(3)
            await client.send(Ping())
            await client.expect(ServerPong)
        assert server.stats.token_expiries == 0


async def test_resume_needs_valid_token(harness: Harness, autojump_clock: MockClock) -> None:
    with trio.fail_after(30):
        await harness.start(secret=SECRET)
        client = await harness.connect()
        ok = await client.login("alice", token=mint_token(SECRET, "alice", 600))
        await client.ws._stream.aclose()
        await trio.sleep(1)
        thief = await harness.connect()
        await thief.send(Login(user="alice", token=mint_token(OTHER, "alice"), resume=ok.session))
        assert (await thief.expect(LoginFail)).reason == LoginError.INVALID_TOKEN
        await trio.sleep(0.5)
        owner = await harness.connect()
        await owner.send(Login(user="alice", token=mint_token(SECRET, "alice"), resume=ok.session))
        assert (await owner.expect(LoginOk)).resumed


# --- the token functions themselves --------------------------------------------------------


def test_mint_refuses_more_than_a_day() -> None:
    with pytest.raises(ValueError, match="24 h"):
        mint_token(SECRET, "alice", 86401)
    with pytest.raises(ValueError):
        mint_token("", "alice")


def test_verify_round_trip() -> None:
    token = mint_token(SECRET, "alice", 100, now=1_000_000.0)
    assert verify_token(SECRET, token, "alice", now=1_000_010.0) == pytest.approx(90)
    with pytest.raises(TokenError) as info:
        verify_token(SECRET, token, "alice", now=1_000_200.0)
    assert info.value.reason == LoginError.TOKEN_EXPIRED


def test_short_secret_does_not_warn() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        token = mint_token("short", "alice")
        assert verify_token("short", token, "alice") > 0


async def test_bad_tokens_do_not_use_up_the_login_rate(harness: Harness) -> None:
    """Strangers without a valid token cannot lock a user out."""
    with trio.fail_after(10):
        await harness.start(secret=SECRET)
        for _ in range(5):
            client = await harness.connect()
            await client.send(Login(user="alice", token=mint_token(OTHER, "alice")))
            assert (await client.expect(LoginFail)).reason == LoginError.INVALID_TOKEN
        client = await harness.connect()
        await client.login("alice", token=mint_token(SECRET, "alice"))
