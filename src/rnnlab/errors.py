"""The one exception type that the command line turns into a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user (a file, a value, a run folder): say what and where, no traceback."""
