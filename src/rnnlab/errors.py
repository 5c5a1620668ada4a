"""The exception for bad input from the user (a file, a value, a run folder).

It is a ``ValueError``: library code raises ValueError/TypeError for bad arguments, as Python does;
the command line prints any of them as one line (``rnnlab: error: ...``, exit 2) and the web app as a
4xx JSON error, never a traceback. UserError marks the messages written for the user: they say what
and where (the file and line, the option and value). Any other exception is a bug in rnnlab: the
command line says so in one line (``rnnlab: internal error ...``, exit 3; ``RNNLAB_DEBUG=1`` shows the
traceback), and ``tests/test_fuzz.py`` fails on it."""


class UserError(ValueError):
    """Bad input from the user: say what and where, no traceback."""
