"""Exception-group helpers shared by the server and the command line."""

from __future__ import annotations


def first_leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups: what a one-line message
    should name. ``exc`` itself when it is not a group."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
