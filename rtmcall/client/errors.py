"""The client's own exceptions: one flat tree under :class:`RtmError`.

API misuse of invitations is not here: it raises the engine's
:class:`rtmcall.engine.events.ApiCallError` with an InvitationApiCallError code, as Agora does.
"""

from __future__ import annotations

from rtmcall.engine.codes import LoginError


class RtmError(Exception):
    """Base of every error the client raises (except ApiCallError)."""


class ConnectFailed(RtmError):
    """The server could not be reached: refused, unresolvable, timed out, TLS failed.

    Attributes:
      url: the URL we tried.
      message: what went wrong, in words (a certificate problem says "certificate").
    """

    def __init__(self, url: str, message: str) -> None:
        super().__init__(f"cannot connect to {url}: {message}")
        self.url = url
        self.message = message


class LoginFailed(RtmError):
    """The server answered the login with a refusal (or not at all).

    Attributes:
      reason: Agora's LoginError code.
      message: the server's explanation.
    """

    def __init__(self, reason: LoginError, message: str = "") -> None:
        text = f"login failed: {reason.name}" + (f" ({message})" if message else "")
        super().__init__(text)
        self.reason = reason
        self.message = message


class NotLoggedIn(RtmError):
    """The call needs a logged-in session and there is none (logged out, kicked, aborted)."""


class RequestFailed(RtmError):
    """The server refused a request (query, subscribe, renew), or did not answer in time.

    Attributes:
      code: the server's error word (``too_often``, ``invalid_user``, …) or ``timeout``.
      message: the server's explanation.
    """

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


class InvalidArgument(RtmError, ValueError):
    """A non-invitation call got a bad argument (e.g. an invalid user id).

    Attributes:
      problem: what is wrong, in words, without the call's name.
    """

    def __init__(self, message: str, problem: str | None = None) -> None:
        super().__init__(message)
        self.problem = problem or message
