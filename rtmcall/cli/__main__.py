"""``python -m rtmcall.cli`` is ``rtmcall``."""

from .app import main

main()
