"""The ``rtmcall`` command line: typer commands, the interactive softphone, pipe mode, demo.

Only :mod:`rtmcall.cli.app` and the small modules of :mod:`.cmd` are imported to show ``--help``;
everything heavy (trio, rich, prompt_toolkit, the client) is imported inside the commands.
"""
