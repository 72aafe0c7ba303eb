"""The typer commands, one small module each (``rtmcall server``, ``login``/``call``/``answer``,
``scenario``, ``demo``, ``history``, ``top``, ``health``, ``bench``). They hold argument
handling only and import only typer: the work is imported when a command runs."""
